-- /api/popular sums watch_daily over a window: a covering index lets that be
-- an index-only scan (no heap visits once autovacuum has set the visibility map).
CREATE INDEX watch_daily_day_cover ON watch_daily (day) INCLUDE (infohash, watches);
