-- Watch history: one row per playback of one file by one session.
-- Timestamps are timestamptz (UTC on the wire); ids are client-made UUIDs so a
-- watch delivered twice from the outbox is one row (ON CONFLICT (id)).
CREATE TABLE watched_torrents (
    id          uuid PRIMARY KEY,
    magnet      text NOT NULL,
    title       text NOT NULL DEFAULT '',
    watched_at  timestamptz NOT NULL,
    session_id  text NOT NULL,
    infohash    char(40) NOT NULL,
    file_index  integer,
    file_path   text,
    position_s  double precision NOT NULL DEFAULT 0,
    duration_s  double precision,
    updated_at  timestamptz NOT NULL
);

-- a session's history, newest first, keyset-paginated on (watched_at, id)
CREATE INDEX watched_torrents_session_time ON watched_torrents (session_id, watched_at DESC, id DESC);
-- resume: a session's latest watch of one file
CREATE INDEX watched_torrents_session_file ON watched_torrents (session_id, infohash, file_index, updated_at DESC);
-- popularity and analytics over a time window
CREATE INDEX watched_torrents_time ON watched_torrents (watched_at);

-- Popularity is read from two small aggregates kept by a statement-level
-- trigger (one upsert per statement, so COPY stays fast):
--   watch_daily: watches per torrent per UTC day (additive over a window);
--   watch_pairs: each (torrent, session) pair with its latest watch, so the
--   distinct sessions of a window that ends now are the pairs whose last
--   watch is inside it (distinct counts do not add up over days).
-- Only inserted rows count: position updates (ON CONFLICT DO UPDATE) do not.
CREATE TABLE watch_daily (
    day       date NOT NULL,
    infohash  char(40) NOT NULL,
    watches   bigint NOT NULL,
    title     text NOT NULL DEFAULT '',
    magnet    text NOT NULL DEFAULT '',
    PRIMARY KEY (day, infohash)
);
CREATE INDEX watch_daily_infohash ON watch_daily (infohash, day DESC);

CREATE TABLE watch_pairs (
    infohash    char(40) NOT NULL,
    session_id  text NOT NULL,
    last_at     timestamptz NOT NULL,
    PRIMARY KEY (infohash, session_id)
);
CREATE INDEX watch_pairs_last ON watch_pairs (infohash, last_at);

CREATE FUNCTION watched_torrents_aggregate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO watch_daily AS d (day, infohash, watches, title, magnet)
    SELECT (n.watched_at AT TIME ZONE 'UTC')::date, n.infohash, count(*),
           max(n.title), max(n.magnet)
    FROM new_rows n
    GROUP BY 1, 2
    ORDER BY 1, 2
    ON CONFLICT (day, infohash) DO UPDATE
        SET watches = d.watches + EXCLUDED.watches,
            title = CASE WHEN EXCLUDED.title <> '' THEN EXCLUDED.title ELSE d.title END,
            magnet = EXCLUDED.magnet;

    INSERT INTO watch_pairs AS p (infohash, session_id, last_at)
    SELECT n.infohash, n.session_id, max(n.watched_at)
    FROM new_rows n
    GROUP BY 1, 2
    ORDER BY 1, 2
    ON CONFLICT (infohash, session_id) DO UPDATE
        SET last_at = GREATEST(p.last_at, EXCLUDED.last_at);
    RETURN NULL;
END $$;

CREATE TRIGGER watched_torrents_aggregate
    AFTER INSERT ON watched_torrents
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION watched_torrents_aggregate();
