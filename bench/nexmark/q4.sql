-- Q4: average closing price per category (the winning bid of each auction).
SELECT q.category, avg(q.final) AS avg_final
FROM (
    SELECT max(b.price) AS final, a.category
    FROM auction AS a JOIN bid AS b ON a.id = b.auction
    WHERE b.date_time BETWEEN a.date_time AND a.expires
    GROUP BY a.id, a.category
) AS q
GROUP BY q.category
