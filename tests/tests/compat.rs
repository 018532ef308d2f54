//! Postgres compatibility as clients meet it: psql's `\d` family, the catalogs tools read
//! (checked against the machine's PostgreSQL for equivalent objects), session settings,
//! transaction blocks and statement timeouts.

use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};
use eddy_tests::{CATALOG_OBJECTS, TestServer, execute, postgres_client, query_rows, unique_name};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

async fn server_with_schema() -> Result<(TestServer, Client)> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    client.batch_execute(CATALOG_OBJECTS).await?;
    Ok((server, client))
}

/// Runs psql's commands (`-c` each, in order) as a user would, unaligned output; fails on
/// any error psql reports.
async fn psql(server: &TestServer, commands: &[&str]) -> Result<String> {
    let port = server.port().to_string();
    let mut cmd = tokio::process::Command::new("psql");
    cmd.args(["-X", "-A", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
        .arg(&port)
        .args(["-U", "analyst", "-d", "eddy"]);
    for c in commands {
        cmd.arg("-c").arg(c);
    }
    let out = cmd.output().await.context("running psql")?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    ensure!(
        out.status.success() && !stderr.contains("ERROR"),
        "psql {commands:?} failed:\n{stderr}\n{stdout}"
    );
    Ok(stdout)
}

fn lines(output: &str) -> BTreeSet<&str> {
    output.lines().collect()
}

#[tokio::test]
async fn psql_describes_every_kind_of_relation() -> Result<()> {
    let (server, _client) = server_with_schema().await?;

    let all = psql(&server, &["\\d"]).await?;
    let all = lines(&all);
    for row in [
        "public|clicks|table|eddy",
        "public|users|table|eddy",
        "public|per_user|materialized view|eddy",
        "public|heavy|view|eddy",
    ] {
        ensure!(all.contains(row), "\\d lacks {row}: {all:?}");
    }

    let tables = psql(&server, &["\\dt"]).await?;
    ensure!(tables.contains("public|clicks|table|eddy") && tables.contains("public|users|table"));
    ensure!(
        !tables.contains("per_user") && !tables.contains("heavy"),
        "{tables}"
    );
    let views = psql(&server, &["\\dv"]).await?;
    ensure!(
        views.contains("public|heavy|view|eddy") && !views.contains("per_user"),
        "{views}"
    );
    let matviews = psql(&server, &["\\dm"]).await?;
    ensure!(
        matviews.contains("public|per_user|materialized view|eddy") && !matviews.contains("heavy"),
        "{matviews}"
    );

    let users = psql(&server, &["\\d users"]).await?;
    ensure!(users.contains("Table \"public.users\""), "{users}");
    let users_lines = lines(&users);
    for row in [
        "id|bigint||not null|",
        "name|text|||",
        "price|numeric(10,2)|||",
        "    \"users_pkey\" PRIMARY KEY, btree (id)",
    ] {
        ensure!(users_lines.contains(row), "\\d users lacks {row}:\n{users}");
    }
    let clicks = psql(&server, &["\\d clicks"]).await?;
    for row in [
        "user_id|bigint||not null|",
        "url|character varying(200)|||",
        "ts|timestamp without time zone|||",
    ] {
        ensure!(
            lines(&clicks).contains(row),
            "\\d clicks lacks {row}:\n{clicks}"
        );
    }

    let per_user = psql(&server, &["\\d+ per_user"]).await?;
    ensure!(
        per_user.contains("Materialized view \"public.per_user\"")
            && per_user.contains("View definition:")
            && per_user.contains("GROUP BY user_id"),
        "{per_user}"
    );
    let heavy = psql(&server, &["\\d+ heavy"]).await?;
    ensure!(
        heavy.contains("View \"public.heavy\"") && heavy.contains("WHERE n > 1"),
        "{heavy}"
    );

    let databases = psql(&server, &["\\l"]).await?;
    ensure!(
        databases.lines().any(|l| l.starts_with("eddy|eddy|UTF8")),
        "{databases}"
    );
    let schemas = psql(&server, &["\\dn"]).await?;
    ensure!(lines(&schemas).contains("public|eddy"), "{schemas}");
    let roles = psql(&server, &["\\du"]).await?;
    ensure!(
        roles.lines().any(|l| l.starts_with("eddy|Superuser")),
        "{roles}"
    );
    let functions = psql(&server, &["\\df"]).await?;
    ensure!(functions.contains("List of functions"), "{functions}");
    let types = psql(&server, &["\\dT"]).await?;
    ensure!(types.contains("List of data types"), "{types}");

    let expanded = psql(
        &server,
        &[
            "\\x on",
            "SELECT user_id, n FROM per_user WHERE user_id = 1",
        ],
    )
    .await?;
    ensure!(
        lines(&expanded).contains("user_id|1") && lines(&expanded).contains("n|2"),
        "{expanded}"
    );
    let timed = psql(&server, &["\\timing on", "SELECT count(*) FROM clicks"]).await?;
    ensure!(
        timed.contains("Time:") && lines(&timed).contains("3"),
        "{timed}"
    );
    Ok(())
}

/// The rows of a query as text, each row's values joined by `|`.
async fn joined(client: &Client, sql: &str) -> Result<Vec<String>> {
    Ok(query_rows(client, sql)
        .await
        .with_context(|| sql.to_string())?
        .into_iter()
        .map(|r| r.join("|"))
        .collect())
}

#[tokio::test]
async fn catalogs_agree_with_each_other_and_with_the_objects() -> Result<()> {
    let (_server, client) = server_with_schema().await?;

    let kinds = joined(
        &client,
        "SELECT c.relname, c.relkind, n.nspname FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' ORDER BY c.relname",
    )
    .await?;
    ensure!(
        kinds
            == [
                "clicks|r|public",
                "heavy|v|public",
                "per_user|m|public",
                "users|r|public",
                "users_pkey|i|public"
            ],
        "{kinds:?}"
    );

    let columns = joined(
        &client,
        "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull \
         FROM pg_catalog.pg_attribute a WHERE a.attrelid = 'clicks'::regclass AND a.attnum > 0 \
         ORDER BY a.attnum",
    )
    .await?;
    ensure!(
        columns
            == [
                "user_id|bigint|t",
                "url|character varying(200)|f",
                "ts|timestamp without time zone|f"
            ],
        "{columns:?}"
    );

    let info = joined(
        &client,
        "SELECT table_name, table_type FROM information_schema.tables \
         WHERE table_schema = 'public' ORDER BY table_name",
    )
    .await?;
    ensure!(
        info == ["clicks|BASE TABLE", "heavy|VIEW", "users|BASE TABLE"],
        "{info:?}"
    );
    let key = joined(
        &client,
        "SELECT k.column_name, k.ordinal_position, c.constraint_type \
         FROM information_schema.key_column_usage k \
         JOIN information_schema.table_constraints c ON c.constraint_name = k.constraint_name \
         WHERE k.table_name = 'users'",
    )
    .await?;
    ensure!(key == ["id|1|PRIMARY KEY"], "{key:?}");
    let index = joined(
        &client,
        "SELECT i.indisprimary, i.indkey, pg_catalog.pg_get_indexdef(i.indexrelid) \
         FROM pg_catalog.pg_index i WHERE i.indrelid = 'users'::regclass",
    )
    .await?;
    ensure!(
        index == ["t|1|CREATE UNIQUE INDEX users_pkey ON public.users USING btree (id)"],
        "{index:?}"
    );

    let definition = joined(
        &client,
        "SELECT pg_catalog.pg_get_viewdef('heavy'::regclass), definition \
         FROM pg_catalog.pg_views WHERE viewname = 'heavy'",
    )
    .await?;
    ensure!(
        definition.len() == 1 && definition[0].matches("WHERE n > 1").count() == 2,
        "{definition:?}"
    );
    let matviews = joined(
        &client,
        "SELECT matviewname, ispopulated FROM pg_catalog.pg_matviews",
    )
    .await?;
    ensure!(matviews == ["per_user|t"], "{matviews:?}");

    // The functions tools call on connecting.
    let functions = joined(
        &client,
        "SELECT current_database(), current_schema(), current_user, \
         pg_catalog.pg_backend_pid() > 0, version() LIKE 'PostgreSQL 16.0 %'",
    )
    .await?;
    ensure!(functions == ["eddy|public|eddy_test|t|t"], "{functions:?}");

    // The catalogs read the live catalog: a dropped view is gone at once.
    execute(&client, "DROP VIEW heavy").await?;
    let after = joined(
        &client,
        "SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'heavy'",
    )
    .await?;
    ensure!(after == ["0"], "{after:?}");
    Ok(())
}

/// The column names of a catalog table, as a query over it reports them.
async fn column_names(client: &Client, table: &str) -> Result<Vec<String>> {
    let stmt = client
        .prepare(&format!("SELECT * FROM {table} LIMIT 0"))
        .await
        .with_context(|| format!("describing {table}"))?;
    Ok(stmt
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect())
}

#[tokio::test]
async fn catalogs_match_postgres_for_equivalent_objects() -> Result<()> {
    let (_server, eddy) = server_with_schema().await?;
    let pg = postgres_client().await?;

    // Every column PostgreSQL's catalog tables have, Eddy's have too.
    for table in [
        "pg_catalog.pg_class",
        "pg_catalog.pg_attribute",
        "pg_catalog.pg_namespace",
        "pg_catalog.pg_index",
        "pg_catalog.pg_constraint",
        "pg_catalog.pg_type",
        "pg_catalog.pg_database",
        "pg_catalog.pg_roles",
        "pg_catalog.pg_settings",
        "pg_catalog.pg_views",
        "pg_catalog.pg_matviews",
        "pg_catalog.pg_tables",
        "pg_catalog.pg_am",
        "information_schema.schemata",
        "information_schema.tables",
        "information_schema.columns",
        "information_schema.views",
        "information_schema.table_constraints",
        "information_schema.key_column_usage",
    ] {
        let theirs = column_names(&pg, table).await?;
        let ours: BTreeSet<String> = column_names(&eddy, table).await?.into_iter().collect();
        let missing: Vec<&String> = theirs.iter().filter(|c| !ours.contains(*c)).collect();
        ensure!(missing.is_empty(), "{table} lacks {missing:?}");
    }

    // The same table declared in both: the same column descriptions.
    let name = unique_name("compat_users");
    pg.batch_execute(&format!(
        "CREATE TABLE {name} (id BIGINT PRIMARY KEY, name TEXT NOT NULL, code VARCHAR(12), \
         price NUMERIC(10,2), ratio DOUBLE PRECISION, small SMALLINT, flag BOOLEAN, \
         born DATE, seen TIMESTAMP, seen_tz TIMESTAMPTZ, doc JSONB, raw BYTEA)"
    ))
    .await?;
    execute(
        &eddy,
        &format!(
            "CREATE TABLE {name} (id BIGINT PRIMARY KEY, name TEXT NOT NULL, code VARCHAR(12), \
             price NUMERIC(10,2), ratio DOUBLE PRECISION, small SMALLINT, flag BOOLEAN, \
             born DATE, seen TIMESTAMP, seen_tz TIMESTAMPTZ, doc JSONB, raw BYTEA)"
        ),
    )
    .await?;
    let queries = [
        format!(
            "SELECT column_name, ordinal_position, is_nullable, data_type, \
             character_maximum_length, numeric_precision, numeric_scale, udt_name \
             FROM information_schema.columns WHERE table_name = '{name}' ORDER BY ordinal_position"
        ),
        format!(
            "SELECT a.attname, a.atttypid::int, a.atttypmod, a.attlen, a.attnotnull, \
             pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a \
             JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
             WHERE c.relname = '{name}' AND a.attnum > 0 ORDER BY a.attnum"
        ),
        format!(
            "SELECT k.column_name, k.ordinal_position, t.constraint_type \
             FROM information_schema.key_column_usage k \
             JOIN information_schema.table_constraints t ON t.constraint_name = k.constraint_name \
             WHERE k.table_name = '{name}'"
        ),
        format!(
            "SELECT c.relkind, c.relnatts, c.relhasindex FROM pg_catalog.pg_class c \
             WHERE c.relname = '{name}'"
        ),
    ];
    let mut result = Ok(());
    for q in &queries {
        let theirs = joined(&pg, q).await?;
        let ours = joined(&eddy, q).await?;
        if theirs != ours {
            result = Err(anyhow::anyhow!(
                "{q}\nPostgreSQL: {theirs:#?}\nEddy: {ours:#?}"
            ));
            break;
        }
    }
    pg.batch_execute(&format!("DROP TABLE {name}")).await?;
    result
}

/// `SHOW name`.
async fn show(client: &Client, name: &str) -> Result<String> {
    Ok(query_rows(client, &format!("SHOW {name}")).await?[0][0].clone())
}

/// The SQLSTATE of a failed statement.
async fn code_of(client: &Client, sql: &str) -> Result<SqlState> {
    match client.batch_execute(sql).await {
        Ok(()) => anyhow::bail!("{sql} succeeded but should have failed"),
        Err(e) => e.code().cloned().with_context(|| format!("{sql}: {e}")),
    }
}

#[tokio::test]
async fn settings_are_per_session_and_checked() -> Result<()> {
    let (server, client) = server_with_schema().await?;
    let other = server.client().await?;

    ensure!(show(&client, "DateStyle").await? == "ISO, MDY");
    client
        .batch_execute("SET application_name = 'dashboards'; SET extra_float_digits TO 3")
        .await?;
    client.batch_execute("SET TIME ZONE 'UTC'").await?;
    ensure!(show(&client, "application_name").await? == "dashboards");
    ensure!(show(&client, "extra_float_digits").await? == "3");
    ensure!(
        show(&other, "extra_float_digits").await? == "1",
        "settings leak across sessions"
    );
    ensure!(show(&client, "transaction isolation level").await? == "read committed");

    let by_function = joined(
        &client,
        "SELECT current_setting('application_name'), \
         current_setting('no.such_setting', true) IS NULL",
    )
    .await?;
    ensure!(by_function == ["dashboards|t"], "{by_function:?}");
    let in_catalog = joined(
        &client,
        "SELECT setting, source FROM pg_catalog.pg_settings WHERE name = 'extra_float_digits'",
    )
    .await?;
    ensure!(in_catalog == ["3|session"], "{in_catalog:?}");
    let activity = joined(
        &other,
        "SELECT application_name, usename FROM pg_catalog.pg_stat_activity \
         WHERE application_name = 'dashboards'",
    )
    .await?;
    ensure!(activity == ["dashboards|eddy_test"], "{activity:?}");

    client.batch_execute("RESET extra_float_digits").await?;
    ensure!(show(&client, "extra_float_digits").await? == "1");
    client.batch_execute("SET statement_timeout = '5s'").await?;
    ensure!(show(&client, "statement_timeout").await? == "5000");
    client.batch_execute("DISCARD ALL").await?;
    ensure!(show(&client, "application_name").await? == "(empty)");
    ensure!(show(&client, "statement_timeout").await? == "0");
    let all = query_rows(&client, "SHOW ALL").await?;
    ensure!(
        all.iter().any(|r| r[0] == "TimeZone" && r[1] == "UTC"),
        "{all:?}"
    );

    ensure!(code_of(&client, "SET no_such_setting = 1").await? == SqlState::UNDEFINED_OBJECT);
    ensure!(code_of(&client, "SHOW no_such_setting").await? == SqlState::UNDEFINED_OBJECT);
    ensure!(
        code_of(&client, "SET extra_float_digits = 12").await? == SqlState::INVALID_PARAMETER_VALUE
    );
    ensure!(
        code_of(&client, "SET server_version = '9.6'").await?
            == SqlState::CANT_CHANGE_RUNTIME_PARAM
    );
    ensure!(
        code_of(&client, "SET DateStyle = 'SQL, DMY'").await? == SqlState::FEATURE_NOT_SUPPORTED
    );
    // Custom settings (with a dot) take any value, as in Postgres.
    client.batch_execute("SET app.tenant = '42'").await?;
    ensure!(show(&client, "app.tenant").await? == "42");
    Ok(())
}

#[tokio::test]
async fn transaction_blocks_follow_postgres() -> Result<()> {
    let (_server, client) = server_with_schema().await?;

    // An error inside a block: everything up to its end is refused, and COMMIT rolls back.
    client.batch_execute("BEGIN").await?;
    ensure!(code_of(&client, "SELECT * FROM no_such_relation").await? == SqlState::UNDEFINED_TABLE);
    ensure!(code_of(&client, "SELECT 1").await? == SqlState::IN_FAILED_SQL_TRANSACTION);
    let end = client.simple_query("COMMIT").await?;
    let tag = end.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(*n),
        _ => None,
    });
    ensure!(tag.is_some(), "COMMIT returned no completion");
    ensure!(
        joined(&client, "SELECT 1").await? == ["1"],
        "the session did not recover"
    );

    // ROLLBACK ends a failed block too.
    client.batch_execute("BEGIN").await?;
    ensure!(code_of(&client, "SELECT 1/0").await? == SqlState::DIVISION_BY_ZERO);
    client.batch_execute("ROLLBACK").await?;
    ensure!(joined(&client, "SELECT count(*) FROM users").await? == ["2"]);

    // A read-only block refuses writes and reads as usual.
    client.batch_execute("BEGIN READ ONLY").await?;
    ensure!(joined(&client, "SELECT count(*) FROM users").await? == ["2"]);
    ensure!(
        code_of(&client, "INSERT INTO users VALUES (3, 'cy', 1)").await?
            == SqlState::READ_ONLY_SQL_TRANSACTION
    );
    client.batch_execute("ROLLBACK").await?;
    execute(&client, "INSERT INTO users VALUES (3, 'cy', 1)").await?;
    ensure!(joined(&client, "SELECT count(*) FROM users").await? == ["3"]);

    // The same through the driver's transaction API (extended protocol).
    let mut client = client;
    let tx = client.transaction().await?;
    tx.execute("INSERT INTO users VALUES (4, 'di', 2)", &[])
        .await?;
    tx.commit().await?;
    ensure!(joined(&client, "SELECT count(*) FROM users").await? == ["4"]);
    Ok(())
}

#[tokio::test]
async fn statement_timeout_cancels_and_the_session_goes_on() -> Result<()> {
    let (_server, client) = server_with_schema().await?;
    client.batch_execute("SET statement_timeout = 200").await?;
    let started = std::time::Instant::now();
    ensure!(code_of(&client, "SELECT pg_sleep(3)").await? == SqlState::QUERY_CANCELED);
    ensure!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "the timeout did not answer before the statement ended"
    );
    ensure!(joined(&client, "SELECT count(*) FROM users").await? == ["2"]);
    client.batch_execute("SET statement_timeout = 0").await?;
    ensure!(joined(&client, "SELECT pg_sleep(0.1) IS NULL").await? == ["t"]);
    Ok(())
}

/// A client's statement, run in a task of its own; the client comes back with the result.
fn spawn_statement(
    client: Client,
    sql: &'static str,
) -> tokio::task::JoinHandle<(Client, Result<(), tokio_postgres::Error>)> {
    tokio::spawn(async move {
        let result = client.batch_execute(sql).await;
        (client, result)
    })
}

#[tokio::test]
async fn cancel_requests_stop_a_statement_and_the_session_goes_on() -> Result<()> {
    let (server, client) = server_with_schema().await?;

    // A driver's cancel request (what psql sends on Ctrl-C).
    let token = client.cancel_token();
    let started = std::time::Instant::now();
    let running = spawn_statement(client, "SELECT pg_sleep(5)");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    token.cancel_query(tokio_postgres::NoTls).await?;
    let (client, result) = running.await?;
    let code = result.err().and_then(|e| e.code().cloned());
    ensure!(code == Some(SqlState::QUERY_CANCELED), "{code:?}");
    ensure!(started.elapsed() < std::time::Duration::from_secs(5));
    ensure!(joined(&client, "SELECT count(*) FROM users").await? == ["2"]);

    // pg_cancel_backend from another session, finding the statement in pg_stat_activity.
    let other = server.client().await?;
    let running = spawn_statement(client, "SELECT pg_sleep(5) AS long_nap");
    let mut pid = None;
    for _ in 0..50 {
        let found = joined(
            &other,
            "SELECT pid FROM pg_catalog.pg_stat_activity \
             WHERE state = 'active' AND query LIKE '%long_nap%' AND pid <> pg_backend_pid()",
        )
        .await?;
        if let Some(p) = found.first() {
            pid = Some(p.clone());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let pid = pid.context("the sleeping statement never showed in pg_stat_activity")?;
    let cancelled = joined(&other, &format!("SELECT pg_cancel_backend({pid})")).await?;
    ensure!(cancelled == ["t"], "{cancelled:?}");
    let (client, result) = running.await?;
    let code = result.err().and_then(|e| e.code().cloned());
    ensure!(code == Some(SqlState::QUERY_CANCELED), "{code:?}");
    ensure!(joined(&client, "SELECT 1").await? == ["1"]);
    Ok(())
}

#[tokio::test]
async fn copy_to_stdout_writes_text_and_csv() -> Result<()> {
    use futures::TryStreamExt;
    let (_server, client) = server_with_schema().await?;
    execute(
        &client,
        "INSERT INTO users VALUES (3, 'tab\tand,comma', NULL)",
    )
    .await?;

    let copy = |sql: &'static str| {
        let client = &client;
        async move {
            let stream = client.copy_out(sql).await?;
            let chunks: Vec<bytes::Bytes> = stream.try_collect().await?;
            Ok::<_, anyhow::Error>(String::from_utf8(chunks.concat())?)
        }
    };
    let text = copy("COPY (SELECT id, name, price FROM users ORDER BY id) TO STDOUT").await?;
    ensure!(
        text == "1\tann\t9.50\n2\tbob\t20.00\n3\ttab\\tand,comma\t\\N\n",
        "{text:?}"
    );
    let csv =
        copy("COPY (SELECT id, name, price FROM users ORDER BY id) TO STDOUT (FORMAT csv, HEADER)")
            .await?;
    ensure!(
        csv == "id,name,price\n1,ann,9.50\n2,bob,20.00\n3,\"tab\tand,comma\",\n",
        "{csv:?}"
    );
    let whole = copy("COPY per_user TO STDOUT").await?;
    let mut lines: Vec<&str> = whole.lines().collect();
    lines.sort();
    ensure!(lines == ["1\t2", "2\t1"], "{lines:?}");
    ensure!(
        code_of(&client, "COPY no_such_relation TO STDOUT").await? == SqlState::UNDEFINED_TABLE
    );
    Ok(())
}

#[tokio::test]
async fn errors_carry_positions_and_functions_name_their_columns() -> Result<()> {
    let (_server, client) = server_with_schema().await?;
    let error = client
        .batch_execute("SELECT id FORM users")
        .await
        .err()
        .context("a misspelt keyword was accepted")?;
    let db = error.as_db_error().context("no database error")?;
    ensure!(db.code() == &SqlState::SYNTAX_ERROR, "{db:?}");
    ensure!(
        matches!(
            db.position(),
            Some(tokio_postgres::error::ErrorPosition::Original(16))
        ),
        "{:?}",
        db.position()
    );

    let stmt = client
        .prepare("SELECT * FROM generate_series(1, 3)")
        .await?;
    ensure!(stmt.columns()[0].name() == "generate_series");
    let stmt = client
        .prepare("SELECT g FROM generate_series(1, 3) g")
        .await?;
    ensure!(stmt.columns()[0].name() == "g");
    ensure!(joined(&client, "SELECT sum(g) FROM generate_series(1, 3) g").await? == ["6"]);
    Ok(())
}

/// (The statement a named DEALLOCATE drops is checked with psycopg, which names its
/// statements: `tests/python/drivers.py`.)
#[tokio::test]
async fn deallocate_drops_prepared_statements() -> Result<()> {
    let (_server, client) = server_with_schema().await?;
    ensure!(
        code_of(&client, "DEALLOCATE nothing_here").await? == SqlState::INVALID_SQL_STATEMENT_NAME
    );
    let by_id = client
        .prepare("SELECT name FROM users WHERE id = $1")
        .await?;
    let count = client.prepare("SELECT count(*) FROM users").await?;
    ensure!(client.query(&by_id, &[&1i64]).await?.len() == 1);
    for discard in ["DEALLOCATE ALL", "DISCARD ALL"] {
        execute(&client, discard).await?;
        let one: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&1i64];
        for stmt in [&by_id, &count] {
            let gone = client
                .query(stmt, &one[..stmt.params().len()])
                .await
                .err()
                .with_context(|| format!("a statement ran after {discard}"))?;
            ensure!(
                gone.code() == Some(&SqlState::INVALID_SQL_STATEMENT_NAME),
                "{discard}: {gone:?}"
            );
        }
    }
    let again = client
        .prepare("SELECT name FROM users WHERE id = $1")
        .await?;
    ensure!(client.query(&again, &[&2i64]).await?.len() == 1);
    Ok(())
}

#[tokio::test]
async fn literals_and_branches_are_typed_as_postgres_types_them() -> Result<()> {
    let (_server, client) = server_with_schema().await?;
    // A quoted literal compared with a boolean is a boolean.
    execute(
        &client,
        "CREATE TABLE flags (id BIGINT PRIMARY KEY, on_sale BOOLEAN)",
    )
    .await?;
    execute(&client, "INSERT INTO flags VALUES (1, true), (2, false)").await?;
    ensure!(joined(&client, "SELECT id FROM flags WHERE on_sale = 't'").await? == ["1"]);
    ensure!(joined(&client, "SELECT id FROM flags WHERE 'no' = on_sale").await? == ["2"]);
    ensure!(
        joined(
            &client,
            "SELECT count(*) FROM pg_catalog.pg_index WHERE indisprimary = 't'"
        )
        .await?
            == ["2"]
    );
    ensure!(
        code_of(&client, "SELECT id FROM flags WHERE on_sale = 'maybe'").await?
            == SqlState::INVALID_TEXT_REPRESENTATION
    );
    // A CASE of int4 and int8 branches is int8, in the description and in the rows.
    let case = "SELECT CASE WHEN id > 1 THEN id::int ELSE 0 END AS c FROM users ORDER BY id";
    let stmt = client.prepare(case).await?;
    ensure!(stmt.columns()[0].type_() == &tokio_postgres::types::Type::INT8);
    let values: Vec<i64> = client
        .query(&stmt, &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    ensure!(values == [0, 2], "{values:?}");
    ensure!(joined(&client, case).await? == ["0", "2"]);
    // The catalogs' string types.
    ensure!(joined(&client, "SELECT 'eddy'::name || '/' || 'r'::\"char\"").await? == ["eddy/r"]);
    Ok(())
}
