-- Q2: selection. Bids on a set of auctions.
SELECT auction, price FROM bid WHERE auction % 123 = 0
