"""The HTTP API as an OpenAPI 3.0 document, served at ``GET /api/openapi.json`` (issue 9).

Built in Python from one table of operations so the Node-edition aliases (``/stream``,
``/torrent/info``, ...) are the same operations under a second path. ``tests/test_openapi.py``
checks that every route of :func:`tstream_kit.server.app.routes` is here and runs schemathesis
against a live server: no 5xx beyond the documented upstream ones, every answer matches.

Every error is ``{"error": string}`` (:data:`ERROR`); the statuses each operation can answer
are listed; success bodies name their required fields and types and stay open to additions.
"""
from __future__ import annotations

import copy
from typing import Any

from .. import __version__
from ..config import DISK_IO_CHOICES

__all__ = ["build_openapi", "OpenApiHandler", "ALIASES"]

J = "application/json"


def _obj(required: dict[str, Any] | None = None, optional: dict[str, Any] | None = None) -> dict[str, Any]:
    props = {**(required or {}), **(optional or {})}
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = sorted(required)
    return out


def _n(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


S = {"type": "string"}
I = {"type": "integer"}
N = {"type": "number"}
B = {"type": "boolean"}
A = {"type": "array", "items": {}}
O = {"type": "object"}
HASH = {"type": "string", "pattern": "^[0-9a-f]{40}$"}

ERROR = _obj({"error": S})

FILE = _obj({"index": I, "path": S, "size": {"type": "integer", "minimum": 0}, "kind": S, "mime": S,
             "playable": B}, {"media": O})
INFO = _obj({"infohash": HASH, "name": _n(S), "piece_length": I, "num_pieces": I, "total_size": I,
             "default_file": _n(I), "files": {"type": "array", "items": FILE}},
            {"subtitles": A, "media": O, "magnet": S})
RESULT = _obj({"title": S, "infohash": HASH, "magnet": S},
              {"size": _n(I), "seeders": _n(I), "leechers": _n(I), "provider": S, "published": _n(S),
               "category": _n(S), "url": _n(S), "providers": {"type": "array", "items": S}})
PROVIDER_REPORT = _obj({"status": {"type": "string", "enum": ["ok", "error", "timeout"]}}, {"count": I, "ms": N, "cached": B, "error": _n(S)})
SEARCH = _obj({"query": S, "count": I, "results": {"type": "array", "items": RESULT},
               "providers": {"type": "object", "additionalProperties": PROVIDER_REPORT}, "ms": N})
WATCH = _obj({"id": S, "infohash": HASH, "position_s": N})
SHOW = O

SCHEMAS: dict[str, Any] = {
    "Error": ERROR,
    "TorrentInfo": INFO,
    "Streams": _obj({"streams": A, "recent_errors": A}),
    "Removed": _obj({"removed": HASH, "deleted_files": B}),
    "StreamsStopped": _obj({"stopped": I, "infohash": HASH, "file_index": _n(I)}),
    "Torrents": _obj({"torrents": {"type": "array", "items": _obj({"infohash": HASH, "has_metadata": B,
                                                                   "num_pieces": I, "readers": I})}}),
    "Peers": _obj({"infohash": HASH, "peers": A}),
    "Pieces": _obj({"infohash": HASH, "pieces": S, "readers": A}),
    "Health": _obj({"status": {"type": "string", "enum": ["ok", "stopped"]}, "torrents": I, "streams": I,
                    "download_rate": N, "upload_rate": N, "peers": I, "listen_port": _n(I), "uptime_s": N,
                    "disk_io": {"type": "string", "enum": list(DISK_IO_CHOICES)},
                    "history": {}, "cache": {}, "redis": S, "search": O}, {"handles": I}),
    "Search": SEARCH,
    "Session": _obj({"session_id": S, "token": S}, {"fresh": B, "source": _n(S), "header": S}),
    "History": _obj({"session_id": S, "watches": {"type": "array", "items": WATCH}, "next_before": _n(S)}),
    "WatchSaved": _obj({"watch": WATCH, "saved": B, "queued": B}),
    "Resume": _obj({"found": B, "infohash": HASH, "file_index": _n(I), "position_s": N, "duration_s": _n(N),
                    "watch_id": _n(S)}, {"updated_at": _n(S)}),
    "Popular": _obj({"days": I, "torrents": A}),
    "Media": _obj({"infohash": HASH, "file_index": I, "subtitle_tracks": A}),
    "Transcodes": _obj({"limit": I, "transcodes": A}),
    "TranscodeStopped": _obj({"stopped": {}}),
    "Subtitles": _obj({"infohash": HASH, "file_index": I, "subtitles": A}),
    "SubtitleSaved": _obj({"infohash": HASH, "file_index": I}),
    "AnimeList": O,
    "Anime": SHOW,
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {J: {"schema": _ref(name)}}}


def _err(description: str) -> dict[str, Any]:
    return {"description": description, "content": {J: {"schema": _ref("Error")}}}


def _q(name: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


MAGNET = _q("magnet", {"type": "string", "example": "magnet:?xt=urn:btih:" + "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"},
            "a magnet link (hex or base32 btih, dn, tr, x.pe) or the infohash of a torrent the server has",
            required=True)
FILE_INDEX = _q("file_index", {"type": "integer", "minimum": 0},
                "libtorrent's file index; default: the largest playable file")
LIMIT = _q("limit", {"type": "integer", "minimum": 1}, "most rows to answer")

#: statuses any operation may answer (Host check, token, body size, rate limit)
COMMON = {
    "403": _err("the Host header is not one this server answers"),
    "401": _err("TSTREAM_API_TOKEN is set and the request carries none, or a wrong one"),
    "429": _err("TSTREAM_RATE_LIMIT exceeded (Retry-After)"),
}
BAD = {"400": _err("a malformed parameter, with what was expected")}
MAGNET_ERRORS = {
    **BAD,
    "404": _err("unknown infohash, or file_index not in the torrent"),
    "503": _err("TSTREAM_MAX_TORRENTS or TSTREAM_MAX_STREAMS reached (Retry-After)"),
    "504": _err("no peer sent the metadata within TSTREAM_METADATA_TIMEOUT"),
}
EXISTING = {**BAD, "404": _err("the server has no such torrent")}
ANILIST = {
    **BAD,
    "404": _err("no such show on AniList"),
    "502": _err("AniList or every indexer failed"),
    "503": _err("AniList's rate limit (Retry-After)"),
}
HISTORY_DOWN = {"503": _err("the history database is down; writes are queued")}
PAGING = [_q("page", {"type": "integer", "minimum": 1}, "page, from 1"),
          _q("per_page", {"type": "integer", "minimum": 1, "maximum": 50}, "shows per page (at most 50)")]
ANIME_ID = {"name": "id", "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}, "description": "AniList id"}

BYTES = {"206": {"description": "the requested range (Content-Range)",
                 "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
         "200": {"description": "the whole file (no, a malformed or a multi-range Range header)",
                 "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
         "416": _err("the range starts past the end (Content-Range: bytes */SIZE)"),
         "410": _err("the stream was stopped (DELETE /api/stream)"),
         "502": _err("a piece failed (the torrent was removed while streaming)")}
RANGE = {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"},
         "description": "RFC 9110 byte ranges; bytes=a-b, bytes=a-, bytes=-n"}


def _op(summary: str, responses: dict[str, Any], params: list[dict[str, Any]] | None = None,
        body: dict[str, Any] | None = None, tag: str = "torrents") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "parameters": params or [],
                          "responses": {**COMMON, **responses}}
    if body is not None:
        op["requestBody"] = body
    return op


STREAM_PARAMS = [MAGNET, FILE_INDEX, RANGE,
                 _q("download", {"type": "boolean"}, "Content-Disposition: attachment")]
TORRENT_BODY = {"required": True, "content": {
    "application/x-bittorrent": {"schema": {"type": "string", "format": "binary"}},
    "multipart/form-data": {"schema": _obj(optional={"torrent": {"type": "string", "format": "binary"}})},
}}
SUBTITLE_BODY = {"required": True, "content": {
    "application/x-subrip": {"schema": {"type": "string", "format": "binary"}},
    "multipart/form-data": {"schema": _obj(optional={"subtitle": {"type": "string", "format": "binary"}})},
}}
WATCH_BODY = {"required": True, "content": {J: {"schema": _obj(
    {"magnet": S}, {"file_index": {"type": "integer", "minimum": 0}, "position_s": {"type": "number", "minimum": 0},
                    "duration_s": {"type": "number", "minimum": 0}, "title": S, "file_path": S, "id": S})}}}

PATHS: dict[str, dict[str, Any]] = {
    "/api/openapi.json": {"get": _op("this document", {"200": {"description": "OpenAPI 3.0",
                                                               "content": {J: {"schema": O}}}}, tag="meta")},
    "/api/stream": {
        "get": _op("the file's bytes, Range per RFC 9110", {**MAGNET_ERRORS, **BYTES}, STREAM_PARAMS, tag="stream"),
        "head": _op("the headers GET would send", {**MAGNET_ERRORS, **BYTES}, STREAM_PARAMS, tag="stream"),
        "delete": _op("stop that file's streams (all files without file_index)",
                      {"200": _json("StreamsStopped"), **MAGNET_ERRORS}, [MAGNET, FILE_INDEX], tag="stream"),
    },
    "/api/info": {"get": _op("files, sizes, pieces; probe=1 adds the media probe",
                             {"200": _json("TorrentInfo"), **MAGNET_ERRORS,
                              "422": _err("the file could not be probed")},
                             [MAGNET, FILE_INDEX, _q("probe", {"type": "boolean"}, "probe the chosen file")])},
    "/api/streams": {"get": _op("active streams and recent stream errors", {"200": _json("Streams")}, tag="stream")},
    "/api/torrent": {"delete": _op("remove a torrent and its streams", {"200": _json("Removed"), **EXISTING},
                                   [MAGNET, _q("delete_files", {"type": "boolean"}, "delete its data too")])},
    "/api/torrents": {
        "get": _op("every torrent: state, progress, peers", {"200": _json("Torrents")}),
        "post": _op("add a .torrent (body or multipart 'torrent' field)",
                    {"201": _json("TorrentInfo", "added"), **BAD,
                     "413": _err("larger than TSTREAM_MAX_UPLOAD_SIZE"),
                     "503": _err("TSTREAM_MAX_TORRENTS reached")},
                    [_q("name", S, "the upload's file name (in messages)")], TORRENT_BODY),
    },
    "/api/peers": {"get": _op("the torrent's connected peers", {"200": _json("Peers"), **EXISTING}, [MAGNET])},
    "/api/pieces": {"get": _op("the file's piece map and read heads", {"200": _json("Pieces"), **EXISTING},
                               [MAGNET, FILE_INDEX])},
    "/api/search": {"get": _op("ranked torrents from every provider", {"200": _json("Search"), **BAD},
                               [_q("query", {"type": "string"}, "words to search for", required=True),
                                _q("provider", S, "one provider, or several comma-separated"),
                                _q("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "most results"),
                                _q("sort", {"type": "string", "enum": ["seeders", "size", "published", "title"]},
                                   "order")], tag="search")},
    "/api/session": {
        "get": _op("this request's session (sets the cookie when new)", {"200": _json("Session"), **BAD},
                   tag="history"),
        "post": _op("a new session token for an API client", {"201": _json("Session", "created")}, tag="history"),
    },
    "/api/history": {
        "get": _op("this session's watches, newest first", {"200": _json("History"), **BAD, **HISTORY_DOWN},
                   [LIMIT, _q("before", S, "the previous page's next_before")], tag="history"),
        "post": _op("record a position", {"200": _json("WatchSaved"), "202": _json("WatchSaved", "queued"),
                                          **BAD, "404": _err("no such watch"), **HISTORY_DOWN},
                    body=WATCH_BODY, tag="history"),
    },
    "/api/resume": {"get": _op("where this session stopped in a file", {"200": _json("Resume"), **BAD, "404": _err("file_index out of range"),
                                                                        **HISTORY_DOWN},
                               [MAGNET, FILE_INDEX], tag="history")},
    "/api/popular": {"get": _op("most watched torrents", {"200": _json("Popular"), **BAD, **HISTORY_DOWN},
                                [_q("days", {"type": "integer", "minimum": 1, "maximum": 3660}, "window"), LIMIT],
                                tag="history")},
    "/api/health": {"get": _op("torrents, streams, rates, peers, dependencies", {"200": _json("Health")}, tag="meta")},
    "/api/media": {"get": _op("probe, playback plan and subtitle tracks of one file",
                              {"200": _json("Media"), **MAGNET_ERRORS, "422": _err("the file could not be probed")},
                              [MAGNET, FILE_INDEX, _q("audio", {"type": "integer", "minimum": 0}, "audio track")],
                              tag="media")},
    "/api/transcode": {
        "get": _op("fragmented MP4 from start seconds (remux or transcode)",
                   {"200": {"description": "fragmented MP4", "content": {"video/mp4": {"schema": {
                       "type": "string", "format": "binary"}}}},
                    **MAGNET_ERRORS, "422": _err("the file could not be probed")},
                   [MAGNET, FILE_INDEX, _q("start", {"type": "number", "minimum": 0}, "seconds"),
                    _q("mode", {"type": "string", "enum": ["auto", "remux", "transcode"]}, "force a mode"),
                    _q("audio", {"type": "integer", "minimum": 0}, "audio track"),
                    _q("viewer", S, "the viewer's id (a seek replaces its job)")], tag="media"),
        "delete": _op("stop a viewer's job", {"200": _json("TranscodeStopped"), **MAGNET_ERRORS},
                      [MAGNET, FILE_INDEX, _q("viewer", S, "the viewer's id")], tag="media"),
    },
    "/api/transcodes": {"get": _op("running ffmpeg jobs", {"200": _json("Transcodes")}, tag="media")},
    "/api/subtitles": {
        "get": _op("a track as WebVTT, or without track the list",
                   {"200": {"description": "the track list, or a WebVTT track", "content": {
                       J: {"schema": _ref("Subtitles")}, "text/vtt": {"schema": S}}},
                    **MAGNET_ERRORS, "422": _err("the track could not be converted")},
                   [MAGNET, FILE_INDEX, _q("track", S, "file:N, s:N or upload:N")], tag="media"),
        "post": _op("upload a subtitle file for a video", {"201": _json("SubtitleSaved", "stored"), **MAGNET_ERRORS,
                                                           "413": _err("too large")},
                    [MAGNET, FILE_INDEX, _q("name", S, "file name, e.g. x.srt")], SUBTITLE_BODY, tag="media"),
    },
    "/api/download": {
        "get": _op("the file as an attachment, with Range", {**MAGNET_ERRORS, **BYTES}, STREAM_PARAMS[:3], tag="stream"),
        "head": _op("the headers GET would send", {**MAGNET_ERRORS, **BYTES}, STREAM_PARAMS[:3], tag="stream"),
    },
    "/api/anime/search": {"get": _op("AniList shows matching query", {"200": _json("AnimeList"), **ANILIST},
                                     [_q("query", {"type": "string", "maxLength": 200}, "words", required=True),
                                      *PAGING], tag="anime")},
    "/api/anime/trending": {"get": _op("AniList's trending shows", {"200": _json("AnimeList"), **ANILIST}, PAGING,
                                       tag="anime")},
    "/api/anime/popular": {"get": _op("AniList's most popular shows", {"200": _json("AnimeList"), **ANILIST}, PAGING,
                                      tag="anime")},
    "/api/anime/{id}": {"get": _op("one show", {"200": _json("Anime"), **ANILIST},
                                   [ANIME_ID, _q("refresh", {"type": "boolean"}, "ask AniList again")], tag="anime")},
    "/api/anime/{id}/episodes": {"get": _op("every episode, with torrents per quality",
                                            {"200": _json("Anime"), **ANILIST},
                                            [ANIME_ID, _q("refresh", {"type": "boolean"}, "ask again")], tag="anime")},
    "/api/anime/{id}/torrents": {"get": _op("the episode's torrents by quality", {"200": _json("Anime"), **ANILIST},
                                            [ANIME_ID, _q("episode", {"type": "integer", "minimum": 1}, "episode",
                                                          required=True),
                                             _q("resolve", {"type": "boolean"}, "resolve batches through the swarm")],
                                            tag="anime")},
    "/api/anime/{id}/next": {"get": _op("the episode to play next in this session", {"200": _json("Anime"), **ANILIST},
                                        [ANIME_ID], tag="anime")},
}

#: the product spec's Node-edition paths: the same operations
ALIASES = {"/stream": "/api/stream", "/torrent/info": "/api/info", "/streams": "/api/streams",
           "/torrent": "/api/torrent", "/api/torrents/search": "/api/search", "/history": "/api/history",
           "/popular": "/api/popular", "/health": "/api/health"}

#: routes that are pages or scripts, not JSON API (documented without schemas)
PAGES = {"/": ("the player page", "text/html"), "/media.js": ("the player's MSE script", "text/javascript")}


def build_openapi(prefix: str = "") -> dict[str, Any]:
    """The document; ``prefix`` is where the routes are mounted (the Jupyter extension's
    ``<base_url>tstream``), given as the server URL so paths stay the same."""
    paths: dict[str, Any] = {}
    for path, ops in PATHS.items():
        paths[path] = copy.deepcopy(ops)
    for alias, target in ALIASES.items():
        ops = copy.deepcopy(PATHS[target])
        for op in ops.values():
            op["summary"] += f" (alias of {target})"
        paths[alias] = ops
    for path, (summary, ctype) in PAGES.items():
        paths[path] = {"get": _op(summary, {"200": {"description": summary, "content": {ctype: {"schema": S}}}},
                                  tag="meta")}
    for path, ops in paths.items():
        for method, op in ops.items():
            op["operationId"] = method + path.replace("/", "_").replace("{", "").replace("}", "").replace(".", "_")
    return {
        "openapi": "3.0.3",
        "info": {"title": "tstream", "version": __version__,
                 "description": "Stream a torrent's video into a browser while it downloads. Every error is "
                                "JSON {\"error\": \"...\"} with a 4xx/5xx status."},
        "servers": [{"url": prefix.rstrip("/") or "/"}],
        "paths": paths,
        "components": {"schemas": copy.deepcopy(SCHEMAS)},
    }


def _handler_class() -> type:
    from .handlers.base import BaseHandler

    class OpenApiHandler(BaseHandler):
        """``GET /api/openapi.json``."""

        async def get(self) -> None:
            prefix = self.request.path[: -len("/api/openapi.json")]
            self.set_header("Cache-Control", "no-cache")
            self.write_json(build_openapi(prefix))

    return OpenApiHandler


OpenApiHandler = _handler_class()
