-- TUMBLE: not a Nexmark query, the windowed count Spark Structured Streaming is measured by
-- (a 10-second tumbling count per key), over the bids of the built-in source.
SELECT auction % 1000 AS k, window_start, window_end, count(*) AS n
FROM TUMBLE(bid, date_time, INTERVAL '10 seconds')
GROUP BY auction % 1000, window_start, window_end
