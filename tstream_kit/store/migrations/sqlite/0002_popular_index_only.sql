-- /api/popular sums watch_daily over a window: a covering index (see the PostgreSQL migration).
CREATE INDEX watch_daily_day_cover ON watch_daily (day, infohash, watches);
