//! The Postgres wire protocol as drivers use it: the extended query protocol with typed
//! parameters and binary results, prepared statements and their descriptions, COPY FROM
//! STDIN, error codes, the `postgres` database alias, and a misbehaving client that must not
//! take anything else down.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use eddy_tests::{TestServer, execute, query_rows, sorted_rows};
use futures::SinkExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, CopyInSink};

/// The SQLSTATE of a failed call, or an error if it did not fail with one.
fn sqlstate<T>(result: Result<T, tokio_postgres::Error>) -> Result<SqlState> {
    match result {
        Ok(_) => anyhow::bail!("the statement succeeded but should have failed"),
        Err(e) => e
            .code()
            .cloned()
            .with_context(|| format!("the error carries no SQLSTATE: {e:?}")),
    }
}

const TYPED_TABLE: &str = "CREATE TABLE typed (id BIGINT PRIMARY KEY, i2 SMALLINT, i4 INT, \
     i8 BIGINT, f4 REAL, f8 DOUBLE PRECISION, ok BOOLEAN, label TEXT, raw BYTEA, day DATE, \
     local_time TIMESTAMP, utc_time TIMESTAMPTZ, price NUMERIC(10,2))";

/// The column types of [`TYPED_TABLE`], in order.
const TYPED_COLUMNS: [Type; 13] = [
    Type::INT8,
    Type::INT2,
    Type::INT4,
    Type::INT8,
    Type::FLOAT4,
    Type::FLOAT8,
    Type::BOOL,
    Type::TEXT,
    Type::BYTEA,
    Type::DATE,
    Type::TIMESTAMP,
    Type::TIMESTAMPTZ,
    Type::NUMERIC,
];

/// One row of [`TYPED_TABLE`] as Rust values.
#[derive(Debug, PartialEq)]
struct Typed {
    i2: Option<i16>,
    i4: Option<i32>,
    i8: Option<i64>,
    f4: Option<f32>,
    f8: Option<f64>,
    ok: Option<bool>,
    label: Option<String>,
    raw: Option<Vec<u8>>,
    day: Option<NaiveDate>,
    local_time: Option<NaiveDateTime>,
    utc_time: Option<DateTime<Utc>>,
    price: Option<Decimal>,
}

impl Typed {
    /// Reads a row through the extended protocol, every column in binary format.
    async fn fetch(client: &Client, id: i64) -> Result<Typed> {
        let row = client
            .query_one(
                "SELECT i2, i4, i8, f4, f8, ok, label, raw, day, local_time, utc_time, price \
                 FROM typed WHERE id = $1",
                &[&id],
            )
            .await?;
        Ok(Typed {
            i2: row.try_get(0)?,
            i4: row.try_get(1)?,
            i8: row.try_get(2)?,
            f4: row.try_get(3)?,
            f8: row.try_get(4)?,
            ok: row.try_get(5)?,
            label: row.try_get(6)?,
            raw: row.try_get(7)?,
            day: row.try_get(8)?,
            local_time: row.try_get(9)?,
            utc_time: row.try_get(10)?,
            price: row.try_get(11)?,
        })
    }
}

#[tokio::test]
async fn typed_parameters_and_binary_results() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;

    let row = client
        .query_one(
            "SELECT $1::BIGINT + 1 AS next, $2::TEXT || '!' AS shout, \
             $3::DOUBLE PRECISION * 2 AS twice, NOT $4::BOOLEAN AS flipped",
            &[&41i64, &"hi", &1.25f64, &true],
        )
        .await?;
    ensure!(row.try_get::<_, i64>("next")? == 42);
    ensure!(row.try_get::<_, String>("shout")? == "hi!");
    ensure!(row.try_get::<_, f64>("twice")? == 2.5);
    ensure!(!row.try_get::<_, bool>("flipped")?);

    // Values written as SQL literals read back in binary.
    execute(&client, TYPED_TABLE).await?;
    execute(
        &client,
        "INSERT INTO typed VALUES (1, -7, 70000, 9000000000, 1.5, -2.25, true, 'héllo', \
         '\\x00ff10', '2024-02-29', '2024-02-29 23:59:59.123456', '2024-02-29 23:59:59+00', 12.34)",
    )
    .await?;
    let literal = Typed {
        i2: Some(-7),
        i4: Some(70_000),
        i8: Some(9_000_000_000),
        f4: Some(1.5),
        f8: Some(-2.25),
        ok: Some(true),
        label: Some("héllo".into()),
        raw: Some(vec![0x00, 0xff, 0x10]),
        day: NaiveDate::from_ymd_opt(2024, 2, 29),
        local_time: NaiveDate::from_ymd_opt(2024, 2, 29)
            .and_then(|d| d.and_hms_micro_opt(23, 59, 59, 123_456)),
        utc_time: Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 59).single(),
        price: Some(Decimal::new(1234, 2)),
    };
    let fetched = Typed::fetch(&client, 1).await?;
    ensure!(
        fetched == literal,
        "read back {fetched:?}, wrote {literal:?}"
    );
    let price: Decimal = client
        .query_one("SELECT price FROM typed WHERE id = $1", &[&1i64])
        .await?
        .try_get(0)?;
    ensure!(price.to_string() == "12.34", "numeric read back as {price}");

    // Values sent as binary parameters of declared types read back unchanged, NULLs too.
    let insert = client
        .prepare_typed(
            "INSERT INTO typed VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            &TYPED_COLUMNS,
        )
        .await?;
    let sent = Typed {
        i2: Some(i16::MIN),
        i4: Some(i32::MAX),
        i8: Some(i64::MIN),
        f4: Some(-0.125),
        f8: Some(1e100),
        ok: Some(false),
        label: Some(String::new()),
        raw: Some(Vec::new()),
        day: NaiveDate::from_ymd_opt(1970, 1, 1),
        local_time: NaiveDate::from_ymd_opt(1999, 12, 31)
            .and_then(|d| d.and_hms_micro_opt(23, 59, 59, 999_999)),
        utc_time: Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single(),
        price: Some(Decimal::new(-5, 2)),
    };
    let inserted = client
        .execute(
            &insert,
            &[
                &2i64,
                &sent.i2,
                &sent.i4,
                &sent.i8,
                &sent.f4,
                &sent.f8,
                &sent.ok,
                &sent.label,
                &sent.raw,
                &sent.day,
                &sent.local_time,
                &sent.utc_time,
                &sent.price,
            ],
        )
        .await?;
    ensure!(inserted == 1);
    ensure!(Typed::fetch(&client, 2).await? == sent);

    let nulls = Typed {
        i2: None,
        i4: None,
        i8: None,
        f4: None,
        f8: None,
        ok: None,
        label: None,
        raw: None,
        day: None,
        local_time: None,
        utc_time: None,
        price: None,
    };
    client
        .execute(
            &insert,
            &[
                &3i64,
                &nulls.i2,
                &nulls.i4,
                &nulls.i8,
                &nulls.f4,
                &nulls.f8,
                &nulls.ok,
                &nulls.label,
                &nulls.raw,
                &nulls.day,
                &nulls.local_time,
                &nulls.utc_time,
                &nulls.price,
            ],
        )
        .await?;
    ensure!(Typed::fetch(&client, 3).await? == nulls);
    Ok(())
}

#[tokio::test]
async fn arrays_read_back_in_text_and_binary() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    execute(&client, TYPED_TABLE).await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW collected AS SELECT array_agg(i2 ORDER BY id) AS i2s, \
         array_agg(i4 ORDER BY id) AS i4s, array_agg(i8 ORDER BY id) AS i8s, \
         array_agg(f8 ORDER BY id) AS f8s, array_agg(ok ORDER BY id) AS oks, \
         array_agg(label ORDER BY id) AS labels, array_agg(raw ORDER BY id) AS raws, \
         array_agg(day ORDER BY id) AS days, array_agg(local_time ORDER BY id) AS locals, \
         array_agg(utc_time ORDER BY id) AS utcs, array_agg(price ORDER BY id) AS prices \
         FROM typed",
    )
    .await?;
    execute(
        &client,
        "INSERT INTO typed VALUES (1, -7, 70000, 9000000000, 1.5, -2.25, true, 'a \"b\"', \
         '\\x00ff', '2024-02-29', '2024-02-29 23:59:59.5', '2024-02-29 23:59:59+00', 12.34), \
         (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    )
    .await?;

    // Binary: each column is an array of its element type, as Postgres sends it.
    let row = client.query_one("SELECT * FROM collected", &[]).await?;
    let types: Vec<&str> = row.columns().iter().map(|c| c.type_().name()).collect();
    ensure!(
        types
            == [
                "_int2",
                "_int4",
                "_int8",
                "_float8",
                "_bool",
                "_text",
                "_bytea",
                "_date",
                "_timestamp",
                "_timestamptz",
                "_numeric"
            ],
        "array columns typed {types:?}"
    );
    ensure!(row.try_get::<_, Vec<Option<i16>>>("i2s")? == [Some(-7), None]);
    ensure!(row.try_get::<_, Vec<Option<i32>>>("i4s")? == [Some(70_000), None]);
    ensure!(row.try_get::<_, Vec<Option<i64>>>("i8s")? == [Some(9_000_000_000), None]);
    ensure!(row.try_get::<_, Vec<Option<f64>>>("f8s")? == [Some(-2.25), None]);
    ensure!(row.try_get::<_, Vec<Option<bool>>>("oks")? == [Some(true), None]);
    ensure!(row.try_get::<_, Vec<Option<String>>>("labels")? == [Some("a \"b\"".into()), None]);
    ensure!(row.try_get::<_, Vec<Option<Vec<u8>>>>("raws")? == [Some(vec![0, 255]), None]);
    let day = NaiveDate::from_ymd_opt(2024, 2, 29);
    ensure!(row.try_get::<_, Vec<Option<NaiveDate>>>("days")? == [day, None]);
    let local = day.and_then(|d| d.and_hms_milli_opt(23, 59, 59, 500));
    ensure!(row.try_get::<_, Vec<Option<NaiveDateTime>>>("locals")? == [local, None]);
    let utc = Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 59).single();
    ensure!(row.try_get::<_, Vec<Option<DateTime<Utc>>>>("utcs")? == [utc, None]);
    ensure!(
        row.try_get::<_, Vec<Option<Decimal>>>("prices")? == [Some(Decimal::new(1234, 2)), None]
    );

    // Text: Postgres' array syntax, elements quoted where the syntax needs it.
    let text = query_rows(&client, "SELECT * FROM collected").await?;
    let expected = [
        "{-7,NULL}",
        "{70000,NULL}",
        "{9000000000,NULL}",
        "{-2.25,NULL}",
        "{t,NULL}",
        r#"{"a \"b\"",NULL}"#,
        r#"{"\\x00ff",NULL}"#,
        "{2024-02-29,NULL}",
        r#"{"2024-02-29 23:59:59.5",NULL}"#,
        r#"{"2024-02-29 23:59:59+00",NULL}"#,
        "{12.34,NULL}",
    ];
    ensure!(
        text == [expected.map(String::from).to_vec()],
        "text arrays {text:?}"
    );
    Ok(())
}

#[tokio::test]
async fn statements_describe_their_parameters_and_columns() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    execute(&client, TYPED_TABLE).await?;
    execute(&client, "CREATE STREAM s (k BIGINT, v BIGINT, note TEXT)").await?;

    let unnamed = client.prepare("SELECT 1 + 1").await?;
    ensure!(unnamed.columns()[0].name() == "?column?");

    let all = client.prepare("SELECT * FROM typed").await?;
    let types: Vec<Type> = all.columns().iter().map(|c| c.type_().clone()).collect();
    ensure!(
        types == TYPED_COLUMNS,
        "SELECT * FROM typed describes {types:?}"
    );
    ensure!(all.columns()[12].name() == "price");

    let lookup = client
        .prepare("SELECT label FROM typed WHERE id = $1")
        .await?;
    ensure!(
        lookup.params() == [Type::INT8],
        "the key parameter is {:?}",
        lookup.params()
    );

    let grouped = client
        .prepare("SELECT k, count(*) AS n, count(*), max(note) AS last_note FROM s GROUP BY k")
        .await?;
    let described: Vec<(&str, &Type)> = grouped
        .columns()
        .iter()
        .map(|c| (c.name(), c.type_()))
        .collect();
    ensure!(
        described
            == [
                ("k", &Type::INT8),
                ("n", &Type::INT8),
                ("count", &Type::INT8),
                ("last_note", &Type::TEXT),
            ],
        "the aggregate describes {described:?}"
    );
    Ok(())
}

#[tokio::test]
async fn prepared_statements_are_reusable_and_see_new_data() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    execute(&client, "CREATE STREAM hits (page TEXT, ms BIGINT)").await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW page_hits AS SELECT page, count(*) AS n, max(ms) AS slowest \
         FROM hits GROUP BY page",
    )
    .await?;

    // Parameter types come from the columns they are written to or compared with.
    let insert = client.prepare("INSERT INTO hits VALUES ($1, $2)").await?;
    let lookup = client
        .prepare("SELECT n, slowest FROM page_hits WHERE page = $1")
        .await?;
    for (page, ms) in [("/", 10i64), ("/a", 20), ("/", 30), ("/b", 5), ("/", 7)] {
        ensure!(client.execute(&insert, &[&page, &ms]).await? == 1);
    }
    let row = client.query_one(&lookup, &[&"/"]).await?;
    ensure!(row.try_get::<_, i64>(0)? == 3);
    ensure!(row.try_get::<_, i64>(1)? == 30);

    client.execute(&insert, &[&"/", &99i64]).await?;
    let row = client.query_one(&lookup, &[&"/"]).await?;
    ensure!((row.try_get::<_, i64>(0)?, row.try_get::<_, i64>(1)?) == (4, 99));
    ensure!(client.query_opt(&lookup, &[&"/missing"]).await?.is_none());

    // Many executions of one statement, interleaved with another.
    for i in 0..50i64 {
        client.execute(&insert, &[&"/b", &i]).await?;
    }
    let row = client.query_one(&lookup, &[&"/b"]).await?;
    ensure!((row.try_get::<_, i64>(0)?, row.try_get::<_, i64>(1)?) == (51, 49));
    Ok(())
}

/// Sends `chunks` as the data of `COPY`, returning the row count the server reports.
async fn copy_in(client: &Client, statement: &str, chunks: &[&'static [u8]]) -> Result<u64> {
    let sink: CopyInSink<Bytes> = client.copy_in(statement).await?;
    let mut sink = std::pin::pin!(sink);
    for &chunk in chunks {
        sink.send(Bytes::from_static(chunk)).await?;
    }
    Ok(sink.as_mut().finish().await?)
}

// COPY started through the extended protocol, as tokio-postgres's `copy_in` does.
#[tokio::test]
async fn copy_from_stdin_feeds_streams_and_views() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    execute(
        &client,
        "CREATE STREAM metrics (host TEXT, value BIGINT, note TEXT)",
    )
    .await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW per_host AS SELECT host, count(*) AS n, sum(value) AS total \
         FROM metrics GROUP BY host",
    )
    .await?;

    // CSV: quoted fields may hold the delimiter, an unquoted empty field is NULL, and a row
    // may be split across chunks.
    let copied = copy_in(
        &client,
        "COPY metrics FROM STDIN (FORMAT csv)",
        &[b"web,1,plain\nweb,2,\"quoted, with comma\"\nd", b"b,5,\n"],
    )
    .await?;
    ensure!(copied == 3, "CSV COPY reported {copied} rows");

    // Text: tab-separated, \N is NULL, backslash escapes.
    let copied = copy_in(
        &client,
        "COPY metrics FROM STDIN",
        &[b"web\t10\t\\N\ncache\t7\ttab\\there\n"],
    )
    .await?;
    ensure!(copied == 2, "text COPY reported {copied} rows");

    let per_host = sorted_rows(&client, "SELECT * FROM per_host").await?;
    let expected = [["cache", "1", "7"], ["db", "1", "5"], ["web", "3", "13"]];
    ensure!(per_host == expected, "per_host is {per_host:?}");
    let notes = sorted_rows(&client, "SELECT value, note FROM metrics").await?;
    let expected = [
        ["1", "plain"],
        ["10", "NULL"],
        ["2", "quoted, with comma"],
        ["5", "NULL"],
        ["7", "tab\there"],
    ];
    ensure!(notes == expected, "metrics holds {notes:?}");

    let missing = client.copy_in::<_, Bytes>("COPY nowhere FROM STDIN").await;
    ensure!(sqlstate(missing)? == SqlState::UNDEFINED_TABLE);
    ensure!(query_rows(&client, "SELECT count(*) FROM metrics").await? == [["5"]]);
    Ok(())
}

#[tokio::test]
async fn errors_carry_sqlstates_and_leave_the_session_usable() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    execute(&client, "CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT)").await?;
    execute(&client, "INSERT INTO t VALUES (1, 'one')").await?;

    ensure!(sqlstate(client.simple_query("SELEC 1").await)? == SqlState::SYNTAX_ERROR);
    ensure!(sqlstate(client.prepare("SELECT * FROM nowhere").await)? == SqlState::UNDEFINED_TABLE);
    ensure!(sqlstate(client.query("SELECT nope FROM t", &[]).await)? == SqlState::UNDEFINED_COLUMN);
    ensure!(
        sqlstate(
            client
                .simple_query("CREATE TABLE t (id BIGINT PRIMARY KEY)")
                .await
        )? == SqlState::DUPLICATE_TABLE
    );
    ensure!(
        sqlstate(
            client
                .execute("INSERT INTO t VALUES (1, 'again')", &[])
                .await
        )? == SqlState::UNIQUE_VIOLATION
    );
    ensure!(
        sqlstate(client.query("SELECT 'abc'::BIGINT", &[]).await)?
            == SqlState::INVALID_TEXT_REPRESENTATION
    );

    let row = client
        .query_one("SELECT name FROM t WHERE id = $1", &[&1i64])
        .await?;
    ensure!(row.try_get::<_, String>(0)? == "one");
    Ok(())
}

#[tokio::test]
async fn postgres_is_an_alias_of_the_eddy_database() -> Result<()> {
    let server = TestServer::start().await?;
    let eddy = server.client().await?;
    let postgres = server.client_for("postgres").await?;
    execute(&eddy, "CREATE TABLE shared (id BIGINT PRIMARY KEY)").await?;
    execute(&postgres, "INSERT INTO shared VALUES (7)").await?;
    ensure!(query_rows(&eddy, "SELECT id FROM shared").await? == [["7"]]);

    // Any other database does not exist, as Postgres would say.
    let other = server.client_for("elsewhere").await;
    let error = match other {
        Ok(_) => anyhow::bail!("connecting to database elsewhere succeeded"),
        Err(e) => e,
    };
    let db_error = error
        .chain()
        .find_map(|e| e.downcast_ref::<tokio_postgres::Error>())
        .and_then(|e| e.as_db_error())
        .with_context(|| format!("no database error in {error:?}"))?;
    ensure!(db_error.code() == &SqlState::INVALID_CATALOG_NAME);
    ensure!(db_error.message() == "database \"elsewhere\" does not exist");
    Ok(())
}

#[tokio::test]
async fn garbage_bytes_close_only_their_own_connection() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    execute(&client, "CREATE TABLE kv (id BIGINT PRIMARY KEY, v TEXT)").await?;
    execute(&client, "INSERT INTO kv VALUES (1, 'intact')").await?;

    let mut rng = StdRng::seed_from_u64(7);
    let startup = {
        let mut body = Vec::new();
        body.extend_from_slice(&196_608i32.to_be_bytes()); // protocol 3.0
        for part in ["user", "eddy", "database", "eddy", ""] {
            body.extend_from_slice(part.as_bytes());
            body.push(0);
        }
        let mut message = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        message.extend_from_slice(&body);
        message
    };
    let ssl_request: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    let preludes: [(&str, Vec<u8>); 4] = [
        ("random bytes", Vec::new()),
        (
            "a startup packet of an unknown protocol",
            vec![0, 0, 0, 8, 0xde, 0xad, 0xbe, 0xef],
        ),
        ("an SSL request", ssl_request.to_vec()),
        ("a valid startup", startup),
    ];
    for (what, prelude) in preludes {
        let mut garbage = vec![0u8; 4096];
        rng.fill(&mut garbage[..]);
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port())).await?;
        // The server may hang up part-way through; that is a fine answer to garbage.
        let _ = stream.write_all(&prelude).await;
        let _ = stream.write_all(&garbage).await;
        let _ = stream.shutdown().await;
        let drained = tokio::time::timeout(Duration::from_secs(10), async {
            let mut buf = [0u8; 1024];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        ensure!(
            drained.is_ok(),
            "after {what} and garbage the server kept the connection open"
        );

        // The established session and new ones are unaffected.
        ensure!(
            query_rows(&client, "SELECT v FROM kv WHERE id = 1").await? == [["intact"]],
            "the other session broke after {what} and garbage"
        );
    }
    let fresh = server.client().await?;
    ensure!(query_rows(&fresh, "SELECT count(*) FROM kv").await? == [["1"]]);
    Ok(())
}

// Sessions run concurrently: each statement must see the relations it names, whatever other
// connections plan or write at the same time, and reads by key must follow the writes.
#[tokio::test]
async fn concurrent_sessions_read_and_write_independently() -> Result<()> {
    const ROUNDS: i64 = 150;
    let server = TestServer::start().await?;
    let setup = server.client().await?;
    for stmt in [
        "CREATE STREAM a (k BIGINT, v BIGINT)",
        "CREATE STREAM b (k BIGINT, v BIGINT)",
        "CREATE MATERIALIZED VIEW a_sum AS SELECT k, count(*) AS n, sum(v) AS s FROM a GROUP BY k",
        "CREATE MATERIALIZED VIEW b_sum AS SELECT k, count(*) AS n, sum(v) AS s FROM b GROUP BY k",
    ] {
        execute(&setup, stmt).await?;
    }
    let mut tasks = Vec::new();
    for stream in ["a", "b"] {
        let client = server.client().await?;
        tasks.push(tokio::spawn(async move {
            for i in 0..ROUNDS {
                client
                    .execute(
                        &format!("INSERT INTO {stream} VALUES ($1, $2)"),
                        &[&(i % 3), &i],
                    )
                    .await
                    .with_context(|| format!("inserting into {stream}"))?;
            }
            anyhow::Ok(())
        }));
    }
    for view in ["a_sum", "b_sum"] {
        let client = server.client().await?;
        tasks.push(tokio::spawn(async move {
            let stmt = client
                .prepare(&format!("SELECT n FROM {view} WHERE k = $1"))
                .await?;
            let mut last = 0i64;
            for i in 0..ROUNDS {
                let rows = client
                    .query(&stmt, &[&(i % 3)])
                    .await
                    .with_context(|| format!("reading {view}"))?;
                if i % 3 == 0 {
                    let n = rows.first().map_or(0, |r| r.get::<_, i64>(0));
                    ensure!(
                        n >= last,
                        "{view} went back from {last} to {n} rows for key 0"
                    );
                    last = n;
                }
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    for view in ["a_sum", "b_sum"] {
        let total = query_rows(&setup, &format!("SELECT sum(n), sum(s) FROM {view}")).await?;
        ensure!(
            total == [[ROUNDS.to_string(), (ROUNDS * (ROUNDS - 1) / 2).to_string()]],
            "{view} totals {total:?}"
        );
    }
    Ok(())
}
