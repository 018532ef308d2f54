"""Real Python drivers against a running Eddy: psycopg 3, psycopg2, asyncpg, SQLAlchemy, and
the metadata pgcli reads for its completions.

Run by tests/tests/drivers.rs, which starts the server and creates the objects below, then
runs `python drivers.py <port>`. Each check prints `ok <name>`; the first failure raises with
what it saw. The objects (see the Rust side):

    clicks (stream)  user_id BIGINT NOT NULL, url VARCHAR(200), ts TIMESTAMP
    users  (table)   id BIGINT PRIMARY KEY, name TEXT, price NUMERIC(10,2)
    per_user (materialized view)  user_id, n
    heavy (view)     user_id, n
"""

import asyncio
import datetime
import sys
from decimal import Decimal


def check(name, got, want):
    if got != want:
        raise AssertionError(f"{name}: got {got!r}, want {want!r}")


def psycopg3(port):
    import psycopg
    from psycopg.types import TypeInfo

    conninfo = f"host=127.0.0.1 port={port} user=analyst dbname=eddy application_name=drivers"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        check("server_version", conn.info.parameter_status("server_version"), "16.0")
        check("server_version_num", conn.info.server_version, 160000)
        # Text parameters.
        rows = conn.execute("SELECT name FROM users WHERE id = %s", (1,)).fetchall()
        check("text params", rows, [("ann",)])
        # Binary parameters and results.
        with conn.cursor(binary=True) as cur:
            cur.execute("SELECT id, name, price FROM users WHERE id = %b", (2,))
            check("binary params", cur.fetchall(), [(2, "bob", Decimal("20.00"))])
            cur.execute("SELECT user_id, n FROM per_user ORDER BY user_id")
            check("binary view read", cur.fetchall(), [(1, 2), (2, 1)])
        ts = conn.execute("SELECT ts FROM clicks WHERE url = %s", ("/a",)).fetchone()[0]
        check("timestamp", ts, datetime.datetime(2026, 1, 1, 0, 0, 0))
        # A SET the server reports back.
        conn.execute("SET application_name = 'renamed'")
        check("reported setting", conn.info.parameter_status("application_name"), "renamed")
        # The driver's type introspection reads pg_type.
        info = TypeInfo.fetch(conn, "numeric")
        check("TypeInfo numeric", (info.oid, info.array_oid), (1700, 1231))
        # A list parameter compared with ANY, sent as an array literal of unknown type.
        rows = conn.execute(
            "SELECT name FROM users WHERE id = ANY(%s) ORDER BY id", ([1, 2],)
        ).fetchall()
        check("ANY(int list)", rows, [("ann",), ("bob",)])
        rows = conn.execute(
            "SELECT id FROM users WHERE name = ANY(%s) ORDER BY id", (["bob", "x y"],)
        ).fetchall()
        check("ANY(text list)", rows, [(2,)])
        # DEALLOCATE drops a statement prepared on the server (psycopg names the ones it
        # prepares _pg3_<n>, counting per connection).
        with psycopg.connect(conninfo, autocommit=True) as fresh:
            query = "SELECT name FROM users WHERE id = %s"
            check("prepared", fresh.execute(query, (1,), prepare=True).fetchall(), [("ann",)])
            fresh.execute('DEALLOCATE "_pg3_0"')
            try:
                fresh.execute(query, (1,), prepare=True)
                raise AssertionError("a deallocated statement still ran")
            except psycopg.errors.InvalidSqlStatementName:
                pass
        # A transaction block.
        with conn.transaction():
            conn.execute("INSERT INTO users VALUES (%s, %s, %s)", (10, "ed", Decimal("1.5")))
        check(
            "after transaction",
            conn.execute("SELECT name FROM users WHERE id = 10").fetchone(),
            ("ed",),
        )
        # COPY TO STDOUT, parsed by the driver.
        with conn.cursor() as cur:
            with cur.copy("COPY (SELECT id, name FROM users ORDER BY id) TO STDOUT") as copy:
                copy.set_types(["int8", "text"])
                rows = list(copy.rows())
        check("copy to", rows[:2], [(1, "ann"), (2, "bob")])
        # Errors carry their SQLSTATE.
        try:
            conn.execute("SELECT * FROM no_such_relation")
            raise AssertionError("reading a missing relation succeeded")
        except psycopg.errors.UndefinedTable:
            pass
    print("ok psycopg3")


def psycopg2_driver(port):
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=port, user="analyst", dbname="eddy")
    try:
        check("server_version", conn.server_version, 160000)
        cur = conn.cursor()
        cur.execute("SELECT id, name FROM users WHERE id = %s AND name = %s", (1, "ann"))
        check("params", cur.fetchall(), [(1, "ann")])
        cur.execute("SELECT user_id, n FROM heavy")
        check("view read", cur.fetchall(), [(1, 2)])
        check(
            "column names",
            [d.name for d in cur.description],
            ["user_id", "n"],
        )
        # psycopg2 opens a transaction block implicitly; commit ends it.
        cur.execute("INSERT INTO users VALUES (%s, %s, %s)", (11, "fay", Decimal("2")))
        conn.commit()
        cur.execute("SELECT count(*) FROM users")
        check("count", cur.fetchone(), (4,))
        conn.rollback()
    finally:
        conn.close()
    print("ok psycopg2")


async def asyncpg_checks(port):
    import asyncpg

    conn = await asyncpg.connect(host="127.0.0.1", port=port, user="analyst", database="eddy")
    try:
        rows = await conn.fetch("SELECT id, name, price FROM users WHERE id = $1", 1)
        check("fetch", [tuple(r) for r in rows], [(1, "ann", Decimal("9.50"))])
        stmt = await conn.prepare("SELECT user_id, n FROM per_user WHERE user_id = $1")
        check("prepared", [tuple(r) for r in await stmt.fetch(1)], [(1, 2)])
        check("prepared again", [tuple(r) for r in await stmt.fetch(2)], [(2, 1)])
        check(
            "prepared types",
            [a.name for a in stmt.get_attributes()],
            ["user_id", "n"],
        )
        # A type asyncpg has no built-in codec for is looked up in pg_type (introspection).
        await conn.set_type_codec(
            "jsonb", encoder=lambda v: v, decoder=lambda v: v, schema="pg_catalog"
        )
        await conn.execute("CREATE TABLE docs (id BIGINT PRIMARY KEY, doc JSONB)")
        await conn.execute("INSERT INTO docs VALUES ($1, $2)", 1, '{"a": 1}')
        check("introspected codec", await conn.fetchval("SELECT doc FROM docs WHERE id = 1"), '{"a": 1}')
        async with conn.transaction():
            await conn.execute("INSERT INTO users VALUES ($1, $2, $3)", 12, "gus", Decimal("3"))
        check("after transaction", await conn.fetchval("SELECT name FROM users WHERE id = 12"), "gus")
    finally:
        await conn.close()
    print("ok asyncpg")


def sqlalchemy_inspect(port):
    from sqlalchemy import create_engine, inspect, text

    for driver in ("psycopg", "psycopg2"):
        engine = create_engine(f"postgresql+{driver}://analyst@127.0.0.1:{port}/eddy")
        try:
            insp = inspect(engine)
            check(f"{driver} schemas", "public" in insp.get_schema_names(), True)
            check(f"{driver} tables", sorted(insp.get_table_names()), ["clicks", "users"])
            check(f"{driver} views", insp.get_view_names(), ["heavy"])
            check(f"{driver} matviews", insp.get_materialized_view_names(), ["per_user"])
            columns = {c["name"]: (str(c["type"]), c["nullable"]) for c in insp.get_columns("users")}
            check(
                f"{driver} columns",
                columns,
                {"id": ("BIGINT", False), "name": ("TEXT", True), "price": ("NUMERIC(10, 2)", True)},
            )
            clicks = [c["name"] for c in insp.get_columns("clicks")]
            check(f"{driver} stream columns", clicks, ["user_id", "url", "ts"])
            check(
                f"{driver} primary key",
                insp.get_pk_constraint("users")["constrained_columns"],
                ["id"],
            )
            check(
                f"{driver} view columns",
                [c["name"] for c in insp.get_columns("per_user")],
                ["user_id", "n"],
            )
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT n FROM per_user WHERE user_id = :u"), {"u": 1})
                check(f"{driver} read", rows.fetchall(), [(2,)])
        finally:
            engine.dispose()
    print("ok sqlalchemy")


def pgcli_metadata(port):
    """What pgcli reads to complete names, and its backslash commands (through pgspecial)."""
    from pgcli.pgexecute import PGExecute
    from pgspecial.main import PGSpecial

    pg = PGExecute("eddy", "analyst", None, "127.0.0.1", port, None)
    check("pgcli search_path", pg.search_path()[0], "public")
    check("pgcli schemata", "public" in pg.schemata(), True)
    public = lambda rows: sorted(r[1] for r in rows if r[0] == "public")
    check("pgcli tables", public(pg.tables()), ["clicks", "users"])
    check("pgcli views", public(pg.views()), ["heavy", "per_user"])
    columns = {(r[1], r[2], r[3]) for r in pg.table_columns() if r[0] == "public"}
    check("pgcli columns", ("users", "price", "numeric") in columns, True)
    check("pgcli view columns", {r[2] for r in pg.view_columns() if r[1] == "per_user"}, {"user_id", "n"})
    check("pgcli databases", pg.databases(), ["eddy"])
    check("pgcli foreign keys", list(pg.foreignkeys()), [])
    lower = [f for f in pg.functions() if f.func_name == "lower"]
    check("pgcli functions", [f.return_type for f in lower][:1], ["text"])
    list(pg.datatypes())
    special = PGSpecial()
    for command, want in [("\\dm", [("public", "per_user", "materialized view", "eddy")]),
                          ("SELECT n FROM per_user WHERE user_id = 1", [(2,)])]:
        for _title, cur, _headers, _status, *_ in pg.run(command, pgspecial=special):
            check(f"pgcli {command}", [tuple(r) for r in cur], want)
    print("ok pgcli")


def main():
    port = int(sys.argv[1])
    psycopg3(port)
    pgcli_metadata(port)
    psycopg2_driver(port)
    sqlalchemy_inspect(port)
    asyncio.run(asyncpg_checks(port))


if __name__ == "__main__":
    main()
