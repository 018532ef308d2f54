//! Kafka sources against a real Kafka-protocol broker (Tansu, see `eddy_tests::kafka`):
//! JSON and CSV records feed a stream and its views, malformed records become dead letters,
//! each partition's offset commits with the epoch so that kills lose and repeat nothing, the
//! watermark is the slowest partition's (an idle one stops counting), and CREATE checks the
//! broker and topic.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use datafusion::arrow::array::{Array, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use eddy_connectors::SourceReader;
use eddy_connectors::kafka::{KafkaReader, KafkaSource};
use eddy_tests::kafka::KafkaBroker;
use eddy_tests::{
    TestServer, compare_rows, execute, postgres_client, postgres_url, query_rows, sorted_rows,
    unique_name, wait_for_value,
};
use rand::Rng;
use tokio_postgres::error::SqlState;

const CAUGHT_UP: Duration = Duration::from_secs(60);

fn stream_sql(name: &str, columns: &str, broker: &KafkaBroker, options: &str) -> String {
    format!(
        "CREATE STREAM {name} ({columns}) WITH (connector = 'kafka', brokers = '{}', \
         topic = '{name}'{options})",
        broker.address()
    )
}

fn order_json(id: i64) -> String {
    format!(
        r#"{{"id": {id}, "user_id": {}, "amount": {}.{:02}, "ts": "2024-01-01 00:{:02}:{:02}"}}"#,
        id % 37,
        (id * 7) % 100,
        id % 100,
        (id / 60) % 60,
        id % 60
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_records_feed_views_and_bad_ones_become_dead_letters() -> Result<()> {
    let broker = KafkaBroker::start().await?;
    broker.create_topic("orders", 4).await?;
    let producer = broker.producer("orders").await?;
    for p in 0..4 {
        let values: Vec<String> = (0..500).map(|i| order_json(i * 4 + p as i64)).collect();
        producer.send(p, &values).await?;
    }
    let bad = [
        "not json at all".to_string(),
        r#"{"id": "seven", "user_id": 1}"#.to_string(),
        r#"{"user_id": 1, "amount": 2.50}"#.to_string(),
    ];
    producer.send(2, &bad).await?;

    let server = TestServer::start().await?;
    let client = server.client().await?;
    execute(
        &client,
        &stream_sql(
            "orders",
            "id BIGINT NOT NULL, user_id BIGINT, amount NUMERIC(10,2), ts TIMESTAMP",
            &broker,
            ", format = 'json'",
        ),
    )
    .await?;
    let per_user =
        "SELECT user_id, count(*) AS n, sum(amount) AS total FROM orders GROUP BY user_id";
    execute(
        &client,
        &format!("CREATE MATERIALIZED VIEW per_user AS {per_user}"),
    )
    .await?;
    wait_for_value(&client, "SELECT sum(n) FROM per_user", "2000", CAUGHT_UP).await?;
    // Records produced after the view exists flow in too.
    producer
        .send(1, &[order_json(2000), order_json(2001)])
        .await?;
    wait_for_value(&client, "SELECT sum(n) FROM per_user", "2002", CAUGHT_UP).await?;

    let view = sorted_rows(&client, "SELECT * FROM per_user").await?;
    let batch = sorted_rows(&client, per_user).await?;
    compare_rows(&view, &batch).map_err(anyhow::Error::msg)?;
    let expected_37: i64 = (0..2002).filter(|i| i % 37 == 0).count() as i64;
    let n_0 = query_rows(&client, "SELECT n FROM per_user WHERE user_id = 0").await?;
    ensure!(
        n_0 == vec![vec![expected_37.to_string()]],
        "user 0: {n_0:?}"
    );

    let letters = query_rows(
        &client,
        "SELECT stream, position, payload, error FROM eddy_catalog.dead_letters ORDER BY position",
    )
    .await?;
    ensure!(letters.len() == 3, "dead letters: {letters:?}");
    for (letter, offset) in letters.iter().zip(500..) {
        ensure!(letter[0] == "orders", "{letter:?}");
        ensure!(
            letter[1] == format!("partition 2 offset {offset}"),
            "{letter:?}"
        );
        ensure!(!letter[3].is_empty(), "{letter:?}");
    }
    ensure!(letters[0][2] == "not json at all", "{letters:?}");
    ensure!(letters[2][3].contains("\"id\""), "{letters:?}");
    let progress = query_rows(
        &client,
        "SELECT rows, dead_letters, source_positions, source_error FROM eddy_catalog.progress \
         WHERE relation = 'orders'",
    )
    .await?;
    ensure!(
        progress == vec![vec!["2002", "3", "0:500,1:502,2:503,3:500", "NULL"]],
        "progress: {progress:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_records_are_read_by_position() -> Result<()> {
    let broker = KafkaBroker::start().await?;
    broker.create_topic("readings", 1).await?;
    let producer = broker.producer("readings").await?;
    let lines: Vec<String> = vec![
        "1,kitchen,21.5".into(),
        "2,\"living room, east\",19.25".into(),
        "3,cellar,not a number".into(),
        "4,,18".into(),
    ];
    producer.send(0, &lines).await?;
    let server = TestServer::start().await?;
    let client = server.client().await?;
    execute(
        &client,
        &stream_sql(
            "readings",
            "id INT, room TEXT, celsius DOUBLE PRECISION",
            &broker,
            ", format = 'csv'",
        ),
    )
    .await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW warm AS SELECT id, room FROM readings WHERE celsius > 19",
    )
    .await?;
    wait_for_value(
        &client,
        "SELECT dead_letters + rows FROM eddy_catalog.progress WHERE relation = 'readings'",
        "4",
        CAUGHT_UP,
    )
    .await?;
    let warm = sorted_rows(&client, "SELECT * FROM warm").await?;
    ensure!(
        warm == vec![
            vec!["1".to_string(), "kitchen".to_string()],
            vec!["2".to_string(), "living room, east".to_string()]
        ],
        "{warm:?}"
    );
    let all = sorted_rows(&client, "SELECT id, room FROM readings").await?;
    ensure!(all.len() == 3 && all[2] == vec!["4", "NULL"], "{all:?}");
    let letters = query_rows(&client, "SELECT position FROM eddy_catalog.dead_letters").await?;
    ensure!(letters == vec![vec!["partition 0 offset 2"]], "{letters:?}");
    Ok(())
}

/// The issue's crash test: a producer writes numbered JSON records to a 4-partition topic
/// while the server is killed with SIGKILL at random moments, 20 times. Afterwards the view
/// over the topic and the PostgreSQL sink table each hold every record exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_kills_lose_and_repeat_no_record() -> Result<()> {
    const RECORDS: i64 = 6_000;
    let broker = KafkaBroker::start().await?;
    broker.create_topic("events", 4).await?;
    let pg = postgres_client().await?;
    let target = unique_name("events");
    let mut server = TestServer::start().await?;
    let client = server.client().await?;
    execute(
        &client,
        &stream_sql(
            "events",
            "id BIGINT NOT NULL, user_id BIGINT, amount NUMERIC(10,2), ts TIMESTAMP",
            &broker,
            ", max_rows_per_epoch = '97'",
        ),
    )
    .await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW tally AS SELECT count(*) AS n, count(DISTINCT id) AS ids, \
         sum(id) AS total FROM events",
    )
    .await?;
    execute(
        &client,
        &format!(
            "CREATE SINK events_pg FROM events WITH (connector = 'postgres', url = '{}', \
             table = '{target}', output_mode = 'append')",
            postgres_url()
        ),
    )
    .await?;
    // The producer runs on its own, in small bursts, while the kills go on.
    let producer = broker.producer("events").await?;
    let produce = tokio::spawn(async move {
        let mut id = 0i64;
        while id < RECORDS {
            let p = (id / 25 % 4) as i32;
            let values: Vec<String> = (id + 1..=id + 25).map(order_json).collect();
            producer.send(p, &values).await?;
            id += 25;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        anyhow::Ok(())
    });
    let mut rng = rand::rng();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..400))).await;
        server.kill()?;
        server.restart().await?;
    }
    produce.await??;
    let client = server.client().await?;
    let n = RECORDS.to_string();
    if let Err(e) = wait_for_value(&client, "SELECT n FROM tally", &n, CAUGHT_UP).await {
        let progress = query_rows(
            &client,
            "SELECT relation, rows, dead_letters, source_positions, source_error \
             FROM eddy_catalog.progress",
        )
        .await?;
        let letters = query_rows(&client, "SELECT * FROM eddy_catalog.dead_letters").await?;
        anyhow::bail!("{e}\nprogress: {progress:?}\ndead letters: {letters:?}");
    }
    let tally = query_rows(&client, "SELECT n, ids, total FROM tally").await?;
    let total = (RECORDS * (RECORDS + 1) / 2).to_string();
    ensure!(
        tally == vec![vec![n.clone(), n.clone(), total.clone()]],
        "{tally:?}"
    );
    let stored = query_rows(&client, "SELECT count(*), count(DISTINCT id) FROM events").await?;
    ensure!(stored == vec![vec![n.clone(), n.clone()]], "{stored:?}");
    let deadline = std::time::Instant::now() + CAUGHT_UP;
    loop {
        let row = pg
            .query_one(
                &format!("SELECT count(*), count(DISTINCT id), sum(id)::text FROM {target}"),
                &[],
            )
            .await?;
        let (count, ids, sum) = (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, Option<String>>(2),
        );
        ensure!(
            count == ids,
            "the sink table repeats records: {count} rows, {ids} ids"
        );
        if count == RECORDS {
            ensure!(sum.as_deref() == Some(total.as_str()), "{sum:?}");
            break;
        }
        if std::time::Instant::now() > deadline {
            let progress = query_rows(
                &client,
                "SELECT relation, rows, source_error FROM eddy_catalog.progress",
            )
            .await?;
            anyhow::bail!("the sink table holds {count} of {RECORDS} records; {progress:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pg.batch_execute(&format!("DROP TABLE {target}")).await?;
    Ok(())
}

/// The watermark of a partitioned topic is the slowest partition's; a partition silent for
/// `idle_timeout` stops holding it back, and counts again once it speaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watermark_follows_the_slowest_partition_that_is_not_idle() -> Result<()> {
    let broker = KafkaBroker::start().await?;
    broker.create_topic("ticks", 2).await?;
    let producer = broker.producer("ticks").await?;
    let server = TestServer::start().await?;
    let client = server.client().await?;
    execute(
        &client,
        &stream_sql(
            "ticks",
            "id BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1 second'",
            &broker,
            ", idle_timeout = '3 seconds'",
        ),
    )
    .await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW n AS SELECT count(*) AS n FROM ticks",
    )
    .await?;
    let tick =
        |id: i64, second: i64| format!(r#"{{"id": {id}, "ts": "2024-01-01 10:00:{second:02}"}}"#);
    let watermark = "SELECT watermark FROM eddy_catalog.progress \
                     WHERE relation = 'ticks'";
    producer.send(0, &[tick(1, 10)]).await?;
    wait_for_value(&client, "SELECT n FROM n", "1", CAUGHT_UP).await?;
    // Partition 1 has said nothing yet: until it is idle, the watermark waits for it.
    let early = query_rows(&client, watermark).await?;
    ensure!(
        early == vec![vec!["NULL"]],
        "watermark before partition 1 is idle: {early:?}"
    );
    wait_for_value(&client, watermark, "2024-01-01 10:00:09", CAUGHT_UP).await?;
    // Partition 1 speaks, behind the watermark: its row is late, the watermark stays.
    producer.send(1, &[tick(2, 5)]).await?;
    wait_for_value(
        &client,
        "SELECT late_rows FROM eddy_catalog.progress WHERE relation = 'ticks'",
        "1",
        CAUGHT_UP,
    )
    .await?;
    producer.send(0, &[tick(3, 20)]).await?;
    producer.send(1, &[tick(4, 15)]).await?;
    wait_for_value(&client, "SELECT n FROM n", "3", CAUGHT_UP).await?;
    wait_for_value(&client, watermark, "2024-01-01 10:00:14", CAUGHT_UP).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_checks_the_broker_and_the_topic() -> Result<()> {
    let broker = KafkaBroker::start().await?;
    broker.create_topic("present", 1).await?;
    let server = TestServer::start().await?;
    let client = server.client().await?;
    let code = |r: Result<u64, tokio_postgres::Error>| -> Result<SqlState> {
        match r {
            Ok(_) => anyhow::bail!("the statement succeeded"),
            Err(e) => Ok(e.code().cloned().unwrap_or(SqlState::INTERNAL_ERROR)),
        }
    };
    let unreachable = client
        .execute(
            "CREATE STREAM s1 (id BIGINT) WITH (connector = 'kafka', brokers = '127.0.0.1:1', \
             topic = 'present')",
            &[],
        )
        .await;
    ensure!(code(unreachable)? == SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION);
    let missing = client
        .execute(
            &format!(
                "CREATE STREAM s2 (id BIGINT) WITH (connector = 'kafka', brokers = '{}', \
                 topic = 'absent')",
                broker.address()
            ),
            &[],
        )
        .await;
    ensure!(code(missing)? == SqlState::UNDEFINED_OBJECT);
    let unknown = client
        .execute(
            &format!(
                "CREATE STREAM s3 (id BIGINT) WITH (connector = 'kafka', brokers = '{}', \
                 topic = 'present', topik = 'x')",
                broker.address()
            ),
            &[],
        )
        .await;
    ensure!(code(unknown)? == SqlState::INVALID_PARAMETER_VALUE);
    execute(
        &client,
        &stream_sql("present", "id BIGINT", &broker, ", start_offset = 'latest'"),
    )
    .await?;
    let insert = client.execute("INSERT INTO present VALUES (1)", &[]).await;
    ensure!(code(insert)? == SqlState::WRONG_OBJECT_TYPE);
    // Nothing was created by the failed statements, and the session goes on.
    let streams = sorted_rows(&client, "SHOW STREAMS").await?;
    ensure!(
        streams.len() == 1 && streams[0][0] == "present",
        "{streams:?}"
    );
    Ok(())
}

/// An update-mode Kafka sink: keyed upserts and tombstones whose last value per key is the
/// view, and no message twice even when the server is killed between deliveries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_sink_upserts_by_key_exactly_once() -> Result<()> {
    let broker = KafkaBroker::start().await?;
    broker.create_topic("board", 3).await?;
    let mut server = TestServer::start().await?;
    let client = server.client().await?;
    execute(
        &client,
        "CREATE TABLE scores (player TEXT PRIMARY KEY, team TEXT, points BIGINT)",
    )
    .await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW board AS SELECT team, sum(points) AS points FROM scores GROUP BY team",
    )
    .await?;
    execute(
        &client,
        &format!(
            "CREATE SINK board_kafka FROM board WITH (connector = 'kafka', brokers = '{}', \
             topic = 'board', output_mode = 'update')",
            broker.address()
        ),
    )
    .await?;
    for round in 0..4 {
        let client = server.client().await?;
        for i in 0..20 {
            execute(
                &client,
                &format!(
                    "INSERT INTO scores VALUES ('p{i}', 't{}', {}) ON CONFLICT (player) \
                     DO UPDATE SET points = scores.points + EXCLUDED.points",
                    (i + round) % 5,
                    i + 1
                ),
            )
            .await?;
        }
        execute(
            &client,
            &format!("DELETE FROM scores WHERE team = 't{round}'"),
        )
        .await?;
        server.kill()?;
        server.restart().await?;
    }
    let client = server.client().await?;
    let view = sorted_rows(&client, "SELECT team, points FROM board").await?;
    let deadline = std::time::Instant::now() + CAUGHT_UP;
    loop {
        let records = broker.read_all("board").await?;
        let mut positions = std::collections::HashSet::new();
        let mut latest = std::collections::BTreeMap::new();
        for (_, r) in &records {
            let position: Vec<&[u8]> = ["eddy_epoch", "eddy_chunk", "eddy_seq"]
                .iter()
                .map(|h| r.headers.get(*h).map(Vec::as_slice).unwrap_or_default())
                .collect();
            ensure!(
                positions.insert(position.concat()),
                "a message came twice: {r:?}"
            );
            let key = String::from_utf8(r.key.clone().unwrap_or_default())?;
            match &r.value {
                Some(v) => latest.insert(key, String::from_utf8(v.clone())?),
                None => latest.remove(&key),
            };
        }
        let mut got: Vec<Vec<String>> = latest
            .values()
            .map(|v| {
                let row: serde_json::Value = serde_json::from_str(v).expect("a JSON row");
                vec![
                    row["team"].as_str().unwrap_or("NULL").to_string(),
                    row["points"].to_string(),
                ]
            })
            .collect();
        got.sort();
        if got == view {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "topic {got:?} vs view {view:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// A broker lost while the stream runs: the reader retries with backoff, the reason shows in
/// the stream's progress, and the server and its views go on answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_broker_shows_in_progress_and_stops_nothing_else() -> Result<()> {
    let broker = KafkaBroker::start().await?;
    broker.create_topic("orders", 2).await?;
    broker
        .producer("orders")
        .await?
        .send(0, &[order_json(1), order_json(2)])
        .await?;
    let server = TestServer::start().await?;
    let client = server.client().await?;
    execute(
        &client,
        &stream_sql(
            "orders",
            "id BIGINT NOT NULL, user_id BIGINT, amount NUMERIC(10,2), ts TIMESTAMP",
            &broker,
            "",
        ),
    )
    .await?;
    execute(
        &client,
        "CREATE MATERIALIZED VIEW n AS SELECT count(*) AS n FROM orders",
    )
    .await?;
    wait_for_value(&client, "SELECT n FROM n", "2", CAUGHT_UP).await?;
    drop(broker);
    // The client gives up on a broker after its own request deadline (about 45 s), longer
    // still when the machine is busy running other suites.
    let deadline = std::time::Instant::now() + 2 * CAUGHT_UP;
    loop {
        let error = query_rows(
            &client,
            "SELECT source_error FROM eddy_catalog.progress WHERE relation = 'orders'",
        )
        .await?;
        if error[0][0] != "NULL" {
            ensure!(error[0][0].contains("Kafka"), "{error:?}");
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "no source error shown"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Everything else goes on.
    let n = query_rows(&client, "SELECT n FROM n").await?;
    ensure!(n == vec![vec!["2"]], "{n:?}");
    execute(&client, "CREATE TABLE t (id BIGINT PRIMARY KEY)").await?;
    execute(&client, "INSERT INTO t VALUES (1)").await?;
    Ok(())
}

/// A restart can resume a partition in the middle of a batch (an epoch took part of it).
/// When that batch is the partition's last, a fetch from the offset may come back empty
/// although records follow it: the reader must still hand out the rest of the batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_resumed_inside_the_last_batch_reads_the_rest_of_it() -> Result<()> {
    let broker = KafkaBroker::start().await?;
    broker.create_topic("batched", 1).await?;
    let values: Vec<String> = (0..20).map(|n| format!(r#"{{"n": {n}}}"#)).collect();
    // One produce request: one batch of offsets 0..20.
    broker.producer("batched").await?.send(0, &values).await?;
    let options = BTreeMap::from(
        [("brokers", broker.address()), ("topic", "batched".into())]
            .map(|(k, v)| (k.to_string(), v)),
    );
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
    for resume_at in [1, 7, 19] {
        let mut reader = KafkaReader::open(
            KafkaSource::from_options(&options)?,
            schema.clone(),
            &BTreeMap::from([(0, resume_at)]),
        )
        .await?;
        let mut read = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while read.len() < (20 - resume_at) as usize && Instant::now() < deadline {
            let Some(batch) = reader.next_batch(Duration::from_millis(200)).await? else {
                continue;
            };
            for part in batch.parts {
                ensure!(
                    part.from == resume_at + read.len() as i64,
                    "a batch from offset {} after {} records read from {resume_at}",
                    part.from,
                    read.len()
                );
                let column = part.rows.column(0);
                let n = column
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("n is BIGINT");
                read.extend((0..n.len()).map(|i| n.value(i)));
            }
        }
        ensure!(
            read == (resume_at..20).collect::<Vec<_>>(),
            "resumed at {resume_at}, read {read:?}"
        );
    }
    Ok(())
}
