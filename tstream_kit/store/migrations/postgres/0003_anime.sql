-- Anime (issue 10): AniList entries and the torrents found for each episode,
-- kept as a cache with an expiry. A show still airing expires within hours
-- (new episodes, new torrents); a finished one within days. Rows past their
-- expiry are still served when AniList or the indexers cannot be reached.
CREATE TABLE anime (
    id                   integer PRIMARY KEY,          -- AniList media id
    title_romaji         text,
    title_english        text,
    status               text,                         -- FINISHED, RELEASING, NOT_YET_RELEASED, ...
    episodes             integer,
    season               text,
    season_year          integer,
    next_episode         integer,                      -- nextAiringEpisode.episode
    next_airing_at       timestamptz,
    data                 jsonb NOT NULL,               -- the whole normalised entry
    fetched_at           timestamptz NOT NULL,
    expires_at           timestamptz NOT NULL,
    torrents_fetched_at  timestamptz,                  -- when episode_torrents was last filled
    torrents_expires_at  timestamptz
);
CREATE INDEX anime_expires ON anime (expires_at);

CREATE TABLE episode_torrents (
    anime_id     integer NOT NULL REFERENCES anime (id) ON DELETE CASCADE,
    episode      integer NOT NULL,
    infohash     text NOT NULL,
    file_index   integer,                 -- libtorrent's index inside a batch; NULL = default file
    file_path    text,
    title        text NOT NULL,
    magnet       text NOT NULL,
    resolution   text,                    -- 2160p, 1080p, 720p, 480p or NULL (unknown)
    codec        text,
    source       text,
    release_group text,
    version      integer,
    batch        boolean NOT NULL DEFAULT false,
    seeders      integer,
    leechers     integer,
    size         bigint,
    trusted      boolean,
    remake       boolean,
    provider     text NOT NULL DEFAULT '',
    fetched_at   timestamptz NOT NULL,
    PRIMARY KEY (anime_id, episode, infohash)
);
-- "which episode is this watch?": history rows are matched by infohash
CREATE INDEX episode_torrents_infohash ON episode_torrents (infohash, file_index);
