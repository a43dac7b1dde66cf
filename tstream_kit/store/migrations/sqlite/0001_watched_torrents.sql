-- Watch history (SQLite, the embedded default). Same shape as the PostgreSQL
-- schema; timestamps are integer microseconds since the Unix epoch (UTC) and
-- ids are UUID text.
CREATE TABLE watched_torrents (
    id          TEXT PRIMARY KEY,
    magnet      TEXT NOT NULL,
    title       TEXT NOT NULL DEFAULT '',
    watched_at  INTEGER NOT NULL,
    session_id  TEXT NOT NULL,
    infohash    TEXT NOT NULL,
    file_index  INTEGER,
    file_path   TEXT,
    position_s  REAL NOT NULL DEFAULT 0,
    duration_s  REAL,
    updated_at  INTEGER NOT NULL
);

CREATE INDEX watched_torrents_session_time ON watched_torrents (session_id, watched_at DESC, id DESC);
CREATE INDEX watched_torrents_session_file ON watched_torrents (session_id, infohash, file_index, updated_at DESC);
CREATE INDEX watched_torrents_time ON watched_torrents (watched_at);

-- Aggregates for popularity; see the PostgreSQL migration for why two.
CREATE TABLE watch_daily (
    day       TEXT NOT NULL,          -- YYYY-MM-DD, UTC
    infohash  TEXT NOT NULL,
    watches   INTEGER NOT NULL,
    title     TEXT NOT NULL DEFAULT '',
    magnet    TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (day, infohash)
);
CREATE INDEX watch_daily_infohash ON watch_daily (infohash, day DESC);

CREATE TABLE watch_pairs (
    infohash    TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    last_at     INTEGER NOT NULL,
    PRIMARY KEY (infohash, session_id)
);
CREATE INDEX watch_pairs_last ON watch_pairs (infohash, last_at);

-- Fires only for inserted rows: an upsert that updates a position does not count.
CREATE TRIGGER watched_torrents_aggregate AFTER INSERT ON watched_torrents
BEGIN
    INSERT INTO watch_daily (day, infohash, watches, title, magnet)
    VALUES (date(NEW.watched_at / 1000000, 'unixepoch'), NEW.infohash, 1, NEW.title, NEW.magnet)
    ON CONFLICT (day, infohash) DO UPDATE
        SET watches = watches + 1,
            title = CASE WHEN excluded.title <> '' THEN excluded.title ELSE title END,
            magnet = excluded.magnet;
    INSERT INTO watch_pairs (infohash, session_id, last_at)
    VALUES (NEW.infohash, NEW.session_id, NEW.watched_at)
    ON CONFLICT (infohash, session_id) DO UPDATE
        SET last_at = max(last_at, excluded.last_at);
END;
