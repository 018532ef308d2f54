#!/usr/bin/env python3
"""Spark Structured Streaming beside `eddy-bench window`: the same windowed counts.

A 10-second TUMBLE (or a 10-second HOP sliding by 5 seconds) count per key, 1,000 keys
(`value % 1000`), 5-second watermark, update mode, over Spark's in-memory `rate` source into
the `noop` sink: the shape `eddy-bench window` runs over Eddy's `rate` source. Spark runs in
local mode on every core with as many shuffle partitions.

Throughput is Spark's own busy-time figure, `processedRowsPerSecond` of each micro-batch
(rows over the batch's processing time), as the median over the batches after the first
(which pays for the JVM warming up). Offer more rows than Spark can take (`--rate`) so that
every batch is full.

    python3 -m venv .venv-spark && .venv-spark/bin/pip install pyspark   # needs Java 17
    .venv-spark/bin/python bench/peers/spark_windows.py --window tumble --rate 3000000 --seconds 60
    .venv-spark/bin/python bench/peers/spark_windows.py --window hop --rate 3000000 --seconds 60

Prints one line: `RESULT {json}`.
"""

import argparse
import json
import os
import statistics
import tempfile
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", choices=["tumble", "hop"], default="tumble")
    parser.add_argument("--rate", type=int, default=3_000_000, help="rows offered per second")
    parser.add_argument("--seconds", type=int, default=60, help="how long to run")
    parser.add_argument("--keys", type=int, default=1000)
    args = parser.parse_args()

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    cores = os.cpu_count() or 1
    spark = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(f"eddy-peer-{args.window}")
        .config("spark.sql.shuffle.partitions", str(cores))
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")

    events = (
        spark.readStream.format("rate")
        .option("rowsPerSecond", args.rate)
        .load()
        .withColumn("k", (F.col("value") % args.keys).cast("int"))
    )
    if args.window == "tumble":
        window = F.window("timestamp", "10 seconds")
    else:
        window = F.window("timestamp", "10 seconds", "5 seconds")
    counts = (
        events.withWatermark("timestamp", "5 seconds")
        .groupBy(window, F.col("k"))
        .count()
    )
    with tempfile.TemporaryDirectory(prefix="spark-peer-") as checkpoints:
        query = (
            counts.writeStream.outputMode("update")
            .format("noop")
            .option("checkpointLocation", checkpoints)
            .start()
        )
        time.sleep(args.seconds)
        batches = [p for p in query.recentProgress if p["numInputRows"] > 0]
        query.stop()
    spark.stop()

    measured = batches[1:]
    if not measured:
        raise SystemExit("no micro-batch finished: run longer")
    rates = [p["processedRowsPerSecond"] for p in measured]
    durations = [p["durationMs"]["triggerExecution"] for p in measured]
    result = {
        "window": args.window,
        "batches": len(measured),
        "rows": sum(p["numInputRows"] for p in measured),
        "processed_rows_per_second_median": statistics.median(rates),
        "batch_ms_median": statistics.median(durations),
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
