-- Q5: hot items. The auctions with the most bids in each 10-second window sliding by 2.
SELECT auction_bids.auction, auction_bids.num
FROM (
    SELECT auction, count(*) AS num, window_start AS starttime, window_end AS endtime
    FROM HOP(bid, date_time, INTERVAL '2 seconds', INTERVAL '10 seconds')
    GROUP BY auction, window_start, window_end
) AS auction_bids
JOIN (
    SELECT max(count_bids.num) AS maxn, count_bids.starttime, count_bids.endtime
    FROM (
        SELECT count(*) AS num, window_start AS starttime, window_end AS endtime
        FROM HOP(bid, date_time, INTERVAL '2 seconds', INTERVAL '10 seconds')
        GROUP BY auction, window_start, window_end
    ) AS count_bids
    GROUP BY count_bids.starttime, count_bids.endtime
) AS max_bids
ON auction_bids.starttime = max_bids.starttime
   AND auction_bids.endtime = max_bids.endtime
   AND auction_bids.num >= max_bids.maxn
