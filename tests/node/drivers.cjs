// node-postgres against a running Eddy: parameters, a named prepared statement, reading a
// view, an error's SQLSTATE. Run by tests/tests/drivers.rs with the port as argument, after
// it created the compatibility suite's objects. Prints "ok node-postgres".

const assert = require("node:assert/strict");
const { Client } = require("pg");

async function main() {
  const client = new Client({ host: "127.0.0.1", port: Number(process.argv[2]), user: "analyst", database: "eddy" });
  await client.connect();
  try {
    const version = await client.query("SHOW server_version");
    assert.equal(version.rows[0].server_version, "16.0");
    const users = await client.query("SELECT id, name, price FROM users WHERE id = $1", [1]);
    assert.deepEqual(users.rows, [{ id: "1", name: "ann", price: "9.50" }]);
    const named = { name: "by-user", text: "SELECT n FROM per_user WHERE user_id = $1", values: [1] };
    assert.deepEqual((await client.query(named)).rows, [{ n: "2" }]);
    assert.deepEqual((await client.query({ ...named, values: [2] })).rows, [{ n: "1" }]);
    const tables = await client.query(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    );
    assert.deepEqual(tables.rows.map((r) => r.table_name), ["clicks", "heavy", "users"]);
    await assert.rejects(client.query("SELECT * FROM no_such_relation"), (e) => e.code === "42P01");
  } finally {
    await client.end();
  }
  console.log("ok node-postgres");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
