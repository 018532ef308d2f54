-- Q11: user sessions. Bids per bidder in sessions that end after 10 seconds without a bid.
SELECT bidder, count(*) AS bid_count, window_start AS starttime, window_end AS endtime
FROM SESSION(bid, date_time, INTERVAL '10 seconds')
GROUP BY bidder, window_start, window_end
