-- Q18: the last bid of each bidder on each auction.
SELECT auction, bidder, price, channel, url, date_time, extra
FROM (
    SELECT auction, bidder, price, channel, url, date_time, extra,
           ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY date_time DESC) AS rank_number
    FROM bid
) AS ranked
WHERE rank_number <= 1
