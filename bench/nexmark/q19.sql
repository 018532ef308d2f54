-- Q19: the ten highest bids of each auction.
SELECT auction, bidder, price, channel, url, date_time, extra, rank_number
FROM (
    SELECT auction, bidder, price, channel, url, date_time, extra,
           ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number
    FROM bid
) AS ranked
WHERE rank_number <= 10
