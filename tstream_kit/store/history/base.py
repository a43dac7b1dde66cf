"""The HistoryStore protocol, the Watch record and what both stores share.

A *watch* is one playback of one file of one torrent by one session. Its id
is a UUID made where the watch starts (the stream handler, the API), so the
same watch delivered twice (the outbox retrying after a lost reply) is still
one row: every write is an upsert on the id.

Exceptions::

    HistoryError
    ├── StoreUnavailable      the database cannot be reached (retry later)
    └── MigrationError        a schema migration failed
"""
from __future__ import annotations

import re
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from importlib import resources
from typing import Any, Iterable, Protocol, Sequence, runtime_checkable

__all__ = [
    "Watch", "Popular", "Cursor", "HistoryStore", "HistoryError", "StoreUnavailable",
    "MigrationError", "Migration", "load_migrations", "utcnow", "new_watch_id",
    "window_start", "dedupe_latest",
]

UTC = timezone.utc


class HistoryError(Exception):
    """Base of the history store's errors."""


class StoreUnavailable(HistoryError):
    """The history database cannot be reached now; writes wait in the outbox."""


class MigrationError(HistoryError):
    """A schema migration failed; the message names it."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_watch_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Watch:
    """One playback of one file by one session (a row of ``watched_torrents``)."""

    id: str
    session_id: str
    infohash: str
    magnet: str
    title: str = ""
    file_index: int | None = None
    file_path: str | None = None
    position_s: float = 0.0
    duration_s: float | None = None
    watched_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        # one spelling of the id, aware UTC datetimes: both stores round-trip them
        object.__setattr__(self, "id", str(uuid.UUID(str(self.id))))
        for name in ("watched_at", "updated_at"):
            value = getattr(self, name)
            if value.tzinfo is None:
                raise ValueError(f"Watch.{name} must be timezone-aware")
            object.__setattr__(self, name, value.astimezone(UTC))

    def with_position(self, position_s: float, duration_s: float | None = None,
                      at: datetime | None = None) -> "Watch":
        return replace(self, position_s=position_s,
                       duration_s=duration_s if duration_s is not None else self.duration_s,
                       updated_at=at or utcnow())

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["watched_at"] = iso(self.watched_at)
        d["updated_at"] = iso(self.updated_at)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Watch":
        d = dict(d)
        d["watched_at"] = parse_time(d["watched_at"])
        d["updated_at"] = parse_time(d["updated_at"])
        return cls(**d)


@dataclass(frozen=True)
class Popular:
    """A torrent's popularity in a window: watches and distinct sessions."""

    infohash: str
    title: str
    magnet: str
    watches: int
    sessions: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Cursor:
    """Keyset position in a session's history: rows strictly older than
    (watched_at, id). Spelled ``<epoch microseconds>.<id>`` in the API; a bare
    ISO 8601 time (or epoch seconds) means "watched before this time"."""

    watched_at: datetime
    id: str | None = None

    def encode(self) -> str:
        micros = to_micros(self.watched_at)
        return f"{micros}.{self.id}" if self.id else str(micros)

    @classmethod
    def parse(cls, text: str) -> "Cursor":
        text = text.strip()
        m = re.fullmatch(r"(\d{1,17})\.([0-9a-fA-F-]{36})", text)
        if m:
            return cls(from_micros(int(m.group(1))), str(uuid.UUID(m.group(2))))
        if re.fullmatch(r"\d{1,12}(\.\d+)?", text):
            return cls(datetime.fromtimestamp(float(text), UTC))
        try:
            return cls(parse_time(text))
        except ValueError:
            raise ValueError(
                f"before must be an ISO 8601 time, epoch seconds, or a next_before cursor; got {text[:60]!r}"
            ) from None


# ----------------------------------------------------------------- time helpers
def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(text: str | datetime) -> datetime:
    if isinstance(text, datetime):
        t = text
    else:
        t = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00").replace(" ", "T", 1))
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC)


def to_micros(t: datetime) -> int:
    delta = t.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def window_start(days: int, now: datetime | None = None) -> date:
    """First UTC day of a popularity window of ``days`` calendar days ending
    today: ``days=1`` is today only, ``days=30`` today and the 29 before."""
    today = (now or utcnow()).astimezone(UTC).date()
    return today - timedelta(days=days - 1)


def dedupe_latest(watches: Iterable[Watch]) -> list[Watch]:
    """One write per id (a statement may not upsert a row twice): the latest
    ``updated_at`` wins, later items win ties; first-seen order is kept."""
    out: dict[str, Watch] = {}
    for w in watches:
        old = out.get(w.id)
        if old is None or w.updated_at >= old.updated_at:
            out[w.id] = w
    return list(out.values())


# ------------------------------------------------------------------ migrations
@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(dialect: str) -> list[Migration]:
    """``store/migrations/<dialect>/NNNN_name.sql`` in version order."""
    folder = resources.files("tstream_kit.store").joinpath("migrations", dialect)
    found = []
    for entry in folder.iterdir():
        m = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda mg: mg.version)
    versions = [mg.version for mg in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two {dialect} migrations share a version: {versions}")
    return found


# -------------------------------------------------------------------- protocol
@runtime_checkable
class HistoryStore(Protocol):
    """Where watches live. Methods are blocking (call them from a thread on
    the event loop); every one raises :class:`StoreUnavailable` when the
    database cannot be reached."""

    #: ``"postgres"`` or ``"sqlite"``: which SQL :meth:`query` speaks
    dialect: str

    def migrate(self) -> list[int]:
        """Apply the migrations not applied yet, under a lock that makes a
        concurrent start wait; returns the versions applied by this call."""

    def schema_versions(self) -> list[int]: ...

    def upsert(self, watches: Sequence[Watch]) -> int:
        """Insert new watches, update the position of known ones (same id,
        same session, not older ``updated_at``). Idempotent. Returns how many
        rows were new."""

    def get(self, watch_id: str) -> Watch | None: ...

    def history(self, session_id: str, limit: int = 50, before: Cursor | None = None) -> list[Watch]:
        """The session's watches, newest ``watched_at`` first."""

    def resume(self, session_id: str, infohash: str, file_index: int | None) -> Watch | None:
        """The session's most recently updated watch of that file."""

    def popular(self, days: int = 30, limit: int = 20, now: datetime | None = None) -> list[Popular]:
        """Torrents by watches in the last ``days`` UTC days (see
        :func:`window_start`), with the distinct sessions that watched them."""

    def count(self) -> int: ...

    def query(self, sql: str, params: dict[str, Any] | None = None) -> tuple[list[str], list[tuple]]:
        """Run a read-only aggregate in this store's dialect (analytics)."""

    def close(self) -> None: ...
