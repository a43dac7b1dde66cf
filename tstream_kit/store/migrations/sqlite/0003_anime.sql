-- Anime (issue 10): AniList entries and the torrents found for each episode,
-- a cache with an expiry (see the PostgreSQL migration). Timestamps are
-- integer microseconds since the Unix epoch (UTC); booleans are 0/1.
CREATE TABLE anime (
    id                   INTEGER PRIMARY KEY,
    title_romaji         TEXT,
    title_english        TEXT,
    status               TEXT,
    episodes             INTEGER,
    season               TEXT,
    season_year          INTEGER,
    next_episode         INTEGER,
    next_airing_at       INTEGER,
    data                 TEXT NOT NULL,
    fetched_at           INTEGER NOT NULL,
    expires_at           INTEGER NOT NULL,
    torrents_fetched_at  INTEGER,
    torrents_expires_at  INTEGER
);
CREATE INDEX anime_expires ON anime (expires_at);

CREATE TABLE episode_torrents (
    anime_id     INTEGER NOT NULL REFERENCES anime (id) ON DELETE CASCADE,
    episode      INTEGER NOT NULL,
    infohash     TEXT NOT NULL,
    file_index   INTEGER,
    file_path    TEXT,
    title        TEXT NOT NULL,
    magnet       TEXT NOT NULL,
    resolution   TEXT,
    codec        TEXT,
    source       TEXT,
    release_group TEXT,
    version      INTEGER,
    batch        INTEGER NOT NULL DEFAULT 0,
    seeders      INTEGER,
    leechers     INTEGER,
    size         INTEGER,
    trusted      INTEGER,
    remake       INTEGER,
    provider     TEXT NOT NULL DEFAULT '',
    fetched_at   INTEGER NOT NULL,
    PRIMARY KEY (anime_id, episode, infohash)
);
CREATE INDEX episode_torrents_infohash ON episode_torrents (infohash, file_index);
