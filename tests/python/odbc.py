"""psqlODBC (Debian's odbc-postgresql, through unixODBC and pyodbc) against a running Eddy: the
ODBC catalog functions that Tableau, Excel and other ODBC tools call to list tables and columns
(SQLTables, SQLColumns, SQLPrimaryKeys, SQLStatistics, SQLForeignKeys, SQLGetTypeInfo), then
reads of every relation listed.

Run by tests/tests/drivers.rs after it creates the objects described in drivers.py; prints
`ok psqlodbc` when every check passed, and raises with what it saw otherwise.
"""

import sys

import pyodbc


def check(name, got, want):
    if got != want:
        raise AssertionError(f"{name}: got {got!r}, want {want!r}")


def main():
    port = int(sys.argv[1])
    conn = pyodbc.connect(
        f"DRIVER={{PostgreSQL Unicode}};SERVER=127.0.0.1;PORT={port};DATABASE=eddy;"
        # Debian's driver entry turns the communication log on; it is not wanted here.
        "UID=analyst;PWD=unused;CommLog=0;Debug=0",
        autocommit=True,
    )
    check("DBMS name", conn.getinfo(pyodbc.SQL_DBMS_NAME), "PostgreSQL")
    check("DBMS version", conn.getinfo(pyodbc.SQL_DBMS_VER), "16.0.0")
    cur = conn.cursor()

    # SQLTables: every relation of public with its kind.
    listed = {(r.table_schem, r.table_name): r.table_type for r in cur.tables().fetchall()}
    public = {name: kind for (schema, name), kind in listed.items() if schema == "public"}
    check(
        "SQLTables",
        public,
        {"clicks": "TABLE", "users": "TABLE", "per_user": "MATVIEW", "heavy": "VIEW"},
    )

    # SQLColumns: names, ODBC and Postgres types, sizes, nullability, in order.
    columns = [
        (c.column_name, c.type_name, c.data_type, c.column_size, c.decimal_digits, c.nullable)
        for c in cur.columns(table="users").fetchall()
    ]
    check(
        "SQLColumns users",
        columns,
        [
            ("id", "int8", pyodbc.SQL_BIGINT, 19, 0, 0),
            ("name", "text", pyodbc.SQL_WLONGVARCHAR, 8190, None, 1),
            ("price", "numeric", pyodbc.SQL_NUMERIC, 10, 2, 1),
        ],
    )
    for relation, want in [
        ("clicks", ["user_id", "url", "ts"]),
        ("per_user", ["user_id", "n"]),
        ("heavy", ["user_id", "n"]),
    ]:
        got = [c.column_name for c in cur.columns(table=relation).fetchall()]
        check(f"SQLColumns {relation}", got, want)
    ts = [c.type_name for c in cur.columns(table="clicks", column="ts").fetchall()]
    check("SQLColumns clicks.ts", ts, ["timestamp"])

    # SQLPrimaryKeys and SQLStatistics: the table's key and its unique index.
    keys = [(k.column_name, k.key_seq, k.pk_name) for k in cur.primaryKeys("users").fetchall()]
    check("SQLPrimaryKeys", keys, [("id", 1, "users_pkey")])
    check("SQLPrimaryKeys of a stream", cur.primaryKeys("clicks").fetchall(), [])
    indexes = [
        (s.index_name, s.non_unique, s.column_name)
        for s in cur.statistics("users").fetchall()
        if s.index_name is not None
    ]
    check("SQLStatistics", indexes, [("users_pkey", 0, "id")])
    check("SQLForeignKeys", cur.foreignKeys(table="users").fetchall(), [])

    # SQLGetTypeInfo: the types a tool offers, with their ODBC codes.
    types = {(t.type_name, t.data_type) for t in cur.getTypeInfo().fetchall()}
    for want in [
        ("int8", pyodbc.SQL_BIGINT),
        ("bool", pyodbc.SQL_BIT),
        ("numeric", pyodbc.SQL_NUMERIC),
        ("timestamptz", pyodbc.SQL_TYPE_TIMESTAMP),
        ("text", pyodbc.SQL_WLONGVARCHAR),
    ]:
        check(f"SQLGetTypeInfo {want}", want in types, True)

    # Then the tool reads what it listed.
    counts = {
        name: cur.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in public
    }
    check("row counts", counts, {"clicks": 3, "users": 2, "per_user": 2, "heavy": 1})
    rows = cur.execute("SELECT id, name, price FROM users ORDER BY id").fetchall()
    check("rows", [tuple(r) for r in rows], [(1, "ann", 9.5), (2, "bob", 20)])
    by_param = cur.execute("SELECT name FROM users WHERE id = ?", 2).fetchall()
    check("parameter", [tuple(r) for r in by_param], [("bob",)])
    # Statements prepared on the server are dropped with DEALLOCATE when they close; the
    # connection goes on.
    for n in range(3):
        got = cur.execute("SELECT n FROM per_user WHERE user_id = ?", 1).fetchone()[0]
        check(f"prepared again {n}", got, 2)
    cur.close()
    conn.close()
    print("ok psqlodbc")


if __name__ == "__main__":
    main()
