-- Q0: pass-through. Every bid, unchanged.
SELECT auction, bidder, price, date_time, extra FROM bid
