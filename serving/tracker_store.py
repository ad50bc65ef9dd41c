"""Where conversations live between requests: an append-only log of events per sender.

Every store keeps a conversation as its list of events in Rasa's JSON (``event.to_dict()``) and
:meth:`~EventLogStore.save` only *appends* the events a tracker gained since it was retrieved (or
last saved). So several server processes sharing one store never overwrite each other: when two
of them handle the same sender at once, both appends are kept, one after the other.

- :class:`SQLTrackerStore` (SQLAlchemy): one row per event ``(sender_id, seq, type, timestamp,
  data)`` with ``(sender_id, seq)`` as primary key. An append reads the next ``seq`` and inserts
  in one transaction; if another process took those numbers first (a key conflict, or SQLite's
  "database is locked"), it re-reads and retries. SQLite (the default, a file next to the
  server, WAL mode) needs no setup; PostgreSQL or any other SQLAlchemy URL works too.
- :class:`RedisTrackerStore`: one list per sender, ``RPUSH`` of JSON events (atomic appends).
- :class:`InMemoryTrackerStore`: a dict, for tests and the shell.

Appends alone keep every event, but two servers answering the same sender at once would each
predict from a tracker without the other's message. So every store also has :meth:`lock`, held
while one request runs on one conversation, across processes (Rasa's lock store): a PostgreSQL
advisory lock, a lock file's byte range for SQLite (processes on one host), a Redis lock key.
A server killed while holding one loses it with its connection or process (Redis: after
``lock_ttl_s``), so no conversation stays locked.

:func:`tracker_store_from_url` picks one by URL scheme: ``sqlite://``, ``postgresql://`` (or any
other SQLAlchemy dialect), ``redis://`` / ``rediss://``, ``memory://``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Mapping, Protocol

from dialogue_models.domain_slots import Slot
from dialogue_models.events import event_from_dict
from dialogue_models.tracker import Tracker

__all__ = ["TrackerStore", "EventLogStore", "InMemoryTrackerStore", "SQLTrackerStore",
           "RedisTrackerStore", "TrackerStoreError", "is_process_local", "tracker_store_from_url"]


class TrackerStoreError(RuntimeError):
    """The store could not be reached, or an append kept conflicting."""


class TrackerStore(Protocol):
    """Load and save conversations by sender id."""

    def retrieve(self, sender_id: str) -> Tracker | None: ...

    def retrieve_or_create(self, sender_id: str) -> Tracker: ...

    def save(self, tracker: Tracker) -> None: ...

    def lock(self, sender_id: str) -> ContextManager[None]: ...


class EventLogStore:
    """The append-only logic shared by the stores; subclasses read and append raw event dicts.

    The store remembers, per tracker object it handed out (:meth:`retrieve`,
    :meth:`retrieve_or_create`) or saved, how many of its events are stored; :meth:`save`
    appends the rest. A tracker it never saw is taken to extend what is stored: its events
    after the stored count are appended."""

    lock_timeout_s = 30.0  # waiting longer for a conversation's lock is an error

    def __init__(self, slots: Mapping[str, Slot] | None = None) -> None:
        self.slots = dict(slots or {})  # declared slots of the domain (their initial values)
        self._saved: weakref.WeakKeyDictionary[Tracker, int] = weakref.WeakKeyDictionary()

    def lock(self, sender_id: str) -> ContextManager[None]:
        """Hold the conversation against other processes (see the module doc); a store that
        lives in one process needs none (the server serialises its own threads)."""
        return contextlib.nullcontext()

    def retrieve(self, sender_id: str) -> Tracker | None:
        stored = self._load(sender_id)
        if not stored:
            return None
        tracker = Tracker(sender_id, self.slots, [event_from_dict(e) for e in stored])
        self._saved[tracker] = len(tracker.events)
        return tracker

    def retrieve_or_create(self, sender_id: str) -> Tracker:
        """The stored conversation, or a new empty tracker whose events are all new (so two
        servers starting the same conversation at once both keep theirs)."""
        tracker = self.retrieve(sender_id)
        if tracker is None:
            tracker = Tracker(sender_id, self.slots)
            self._saved[tracker] = 0
        return tracker

    def save(self, tracker: Tracker) -> None:
        start = self._saved.get(tracker)
        if start is None:
            start = min(self._count(tracker.sender_id), len(tracker.events))
        new = [event.to_dict() for event in tracker.events[start:]]
        if new:
            self._append(tracker.sender_id, new)
        self._saved[tracker] = len(tracker.events)

    def keys(self) -> list[str]:
        """The sender ids with a stored conversation."""
        raise NotImplementedError

    # ---- what a backend implements -------------------------------------------------------------
    def _load(self, sender_id: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _count(self, sender_id: str) -> int:
        return len(self._load(sender_id))

    def _append(self, sender_id: str, events: list[dict[str, Any]]) -> None:
        raise NotImplementedError


class InMemoryTrackerStore(EventLogStore):
    """Conversations in a dict (JSON strings, so a retrieved tracker shares nothing)."""

    def __init__(self, slots: Mapping[str, Slot] | None = None) -> None:
        super().__init__(slots)
        self._events: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def keys(self) -> list[str]:
        return list(self._events)

    def _load(self, sender_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(e) for e in self._events.get(sender_id, [])]

    def _append(self, sender_id: str, events: list[dict[str, Any]]) -> None:
        with self._lock:
            self._events.setdefault(sender_id, []).extend(_dumps(e) for e in events)


class SQLTrackerStore(EventLogStore):
    """One row per event in table ``dialab_events`` of any SQLAlchemy database."""

    def __init__(self, url: str, slots: Mapping[str, Slot] | None = None,
                 max_retries: int = 20) -> None:
        super().__init__(slots)
        import sqlalchemy as sa

        self._sa = sa
        self.url, self.max_retries = url, max_retries
        self.engine = _create_engine(url)
        metadata = sa.MetaData()
        self.table = sa.Table(
            "dialab_events", metadata,
            sa.Column("sender_id", sa.String(255), primary_key=True),
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("type_name", sa.String(64), nullable=False),
            sa.Column("timestamp", sa.Float),
            sa.Column("data", sa.Text, nullable=False))
        self._create_table(metadata)
        self._file_lock: _FileLock | None = None
        database = self.engine.url.database
        if self.engine.dialect.name == "sqlite" and database and database != ":memory:":
            self._file_lock = _FileLock.for_path(Path(database + ".lock"))

    def _create_table(self, metadata: Any, attempts: int = 10) -> None:
        """Create the events table unless it exists. Servers starting together on one fresh
        store race here: a loser either finds the table made by the winner (not an error) or,
        on SQLite, is told the database is locked while the winner switches it to WAL or
        writes its schema (SQLite answers that at once, without waiting, when a read snapshot
        went stale); it tries again a little later."""
        sa = self._sa
        for attempt in range(attempts):
            try:
                metadata.create_all(self.engine)
                return
            except sa.exc.DBAPIError as err:
                error = err
                try:
                    if sa.inspect(self.engine).has_table("dialab_events"):
                        return
                except sa.exc.DBAPIError:
                    pass
                if "locked" not in str(err.orig) or attempt == attempts - 1:
                    break
                time.sleep(0.05 * (attempt + 1))
        raise TrackerStoreError(f"cannot open the tracker store {_safe_url(self.url)}: "
                                f"{error.orig}") from None

    def lock(self, sender_id: str) -> ContextManager[None]:
        if self.engine.dialect.name == "postgresql":
            return self._advisory_lock(sender_id)
        if self._file_lock is not None:
            return self._file_lock.hold(sender_id, self.lock_timeout_s)
        return contextlib.nullcontext()  # another database: appends alone keep the events

    @contextlib.contextmanager
    def _advisory_lock(self, sender_id: str) -> Iterator[None]:
        """A session-level PostgreSQL advisory lock on the sender's 64-bit hash, on a
        connection of its own held for the block (it dies with a killed server)."""
        key, text = _lock_key(sender_id), self._sa.text
        with self.engine.connect() as connection:
            _wait_for(lambda: connection.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                                 {"k": key}).scalar(),
                      self.lock_timeout_s, sender_id)
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                connection.commit()

    def keys(self) -> list[str]:
        with self.engine.connect() as connection:
            query = self._sa.select(self.table.c.sender_id).distinct()
            return [row[0] for row in connection.execute(query)]

    def _load(self, sender_id: str) -> list[dict[str, Any]]:
        table = self.table
        query = self._sa.select(table.c.data).where(table.c.sender_id == sender_id) \
            .order_by(table.c.seq)
        with self.engine.connect() as connection:
            return [json.loads(row[0]) for row in connection.execute(query)]

    def _count(self, sender_id: str) -> int:
        with self.engine.connect() as connection:
            return self._next_seq(connection, sender_id)

    def _next_seq(self, connection: Any, sender_id: str) -> int:
        table, sa = self.table, self._sa
        query = sa.select(sa.func.max(table.c.seq)).where(table.c.sender_id == sender_id)
        last = connection.execute(query).scalar()
        return 0 if last is None else int(last) + 1

    def _append(self, sender_id: str, events: list[dict[str, Any]]) -> None:
        sa = self._sa
        for attempt in range(self.max_retries):
            try:
                with self.engine.begin() as connection:
                    start = self._next_seq(connection, sender_id)
                    connection.execute(sa.insert(self.table), [
                        {"sender_id": sender_id, "seq": start + i, "type_name": e["event"],
                         "timestamp": e.get("timestamp"), "data": _dumps(e)}
                        for i, e in enumerate(events)])
                return
            except (sa.exc.IntegrityError, sa.exc.OperationalError) as err:
                if isinstance(err, sa.exc.OperationalError) and not _is_busy(err):
                    raise TrackerStoreError(f"tracker store {_safe_url(self.url)}: "
                                            f"{err.orig}") from None
                time.sleep(random.uniform(0.0, 0.01 * (attempt + 1)))  # another writer won
        raise TrackerStoreError(f"could not append {len(events)} events for '{sender_id}' after "
                                f"{self.max_retries} conflicting attempts")


class RedisTrackerStore(EventLogStore):
    """One Redis list per sender (``<prefix><sender_id>``), appended with ``RPUSH``."""

    def __init__(self, url: str, slots: Mapping[str, Slot] | None = None,
                 key_prefix: str = "dialab:tracker:", lock_ttl_s: float = 60.0) -> None:
        super().__init__(slots)
        import redis

        self.url, self.prefix, self.lock_ttl_s = url, key_prefix, lock_ttl_s
        self.client = redis.Redis.from_url(url)

    @contextlib.contextmanager
    def lock(self, sender_id: str) -> Iterator[None]:
        """redis-py's lock (``SET NX PX`` with a token; released only by its holder); it
        expires after ``lock_ttl_s`` if the server holding it was killed."""
        from redis.exceptions import LockError

        lock = self.client.lock(f"dialab:lock:{sender_id}", timeout=self.lock_ttl_s,
                                sleep=0.005, blocking_timeout=self.lock_timeout_s)
        if not lock.acquire():
            raise _locked(sender_id, self.lock_timeout_s)
        try:
            yield
        finally:
            with contextlib.suppress(LockError):  # expired and maybe taken: not ours to free
                lock.release()

    def keys(self) -> list[str]:
        return [key.decode()[len(self.prefix):]
                for key in self.client.scan_iter(match=f"{self.prefix}*")]

    def _load(self, sender_id: str) -> list[dict[str, Any]]:
        return [json.loads(e) for e in self.client.lrange(self.prefix + sender_id, 0, -1)]

    def _count(self, sender_id: str) -> int:
        return int(self.client.llen(self.prefix + sender_id))

    def _append(self, sender_id: str, events: list[dict[str, Any]]) -> None:
        self.client.rpush(self.prefix + sender_id, *[_dumps(e) for e in events])


def is_process_local(url: str) -> bool:
    """Whether the store of ``url`` lives in one process (``memory://``): servers in other
    processes cannot share its conversations."""
    return _scheme(url) == "memory"


def _scheme(url: str) -> str:
    return url.split(":", 1)[0].lower()


def tracker_store_from_url(url: str, slots: Mapping[str, Slot] | None = None) -> EventLogStore:
    """A store for ``url``: ``memory://``, ``redis://``/``rediss://``, else SQLAlchemy."""
    scheme = _scheme(url)
    if is_process_local(url):
        return InMemoryTrackerStore(slots)
    if scheme in ("redis", "rediss", "unix"):
        return RedisTrackerStore(url, slots)
    if "://" not in url:
        raise ValueError(f"tracker store URL {url!r} has no scheme; use sqlite:///path.db, "
                         "postgresql://user@host/db, redis://host:6379/0 or memory://")
    return SQLTrackerStore(url, slots)


# ---- helpers -------------------------------------------------------------------------------------
class _FileLock:
    """Per-conversation locks between the processes of one host: an exclusive POSIX record
    lock on one byte (of 4096, by the sender's hash) of a lock file beside the database.

    POSIX record locks belong to a process, not to a descriptor or thread, so one instance
    serves every store of a process on that file (:meth:`for_path`), and a thread lock per byte
    serialises the process's own threads first. The file stays open for the process's life:
    closing any descriptor of it would drop all of the process's locks on it."""

    STRIPES = 4096
    _instances: dict[Path, "_FileLock"] = {}
    _instances_lock = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self._threads = [threading.Lock() for _ in range(self.STRIPES)]

    @classmethod
    def for_path(cls, path: Path) -> "_FileLock":
        path = path.resolve()
        with cls._instances_lock:
            if path not in cls._instances:
                cls._instances[path] = cls(path)
            return cls._instances[path]

    @contextlib.contextmanager
    def hold(self, sender_id: str, timeout_s: float) -> Iterator[None]:
        import fcntl

        offset = _lock_key(sender_id) % self.STRIPES

        def try_lock() -> bool:
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
                return True
            except OSError:  # another process holds it
                return False

        if not self._threads[offset].acquire(timeout=timeout_s):
            raise _locked(sender_id, timeout_s)
        try:
            _wait_for(try_lock, timeout_s, sender_id)
            try:
                yield
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, offset)
        finally:
            self._threads[offset].release()


def _lock_key(sender_id: str) -> int:
    """A stable signed 64-bit key for the sender (PostgreSQL's advisory lock key type)."""
    return int.from_bytes(hashlib.blake2b(sender_id.encode(), digest_size=8).digest(), "big",
                          signed=True)


def _wait_for(try_acquire: Callable[[], Any], timeout_s: float, sender_id: str) -> None:
    deadline = time.monotonic() + timeout_s
    delay = 0.001
    while not try_acquire():
        if time.monotonic() > deadline:
            raise _locked(sender_id, timeout_s)
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def _locked(sender_id: str, timeout_s: float) -> TrackerStoreError:
    return TrackerStoreError(f"conversation '{sender_id}' stayed locked by another server "
                             f"for more than {timeout_s:g} s")


def _dumps(event: dict[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False)


def _create_engine(url: str) -> Any:
    import sqlalchemy as sa

    if not url.startswith("sqlite"):
        return sa.create_engine(_with_installed_driver(sa.engine.make_url(url)),
                                pool_pre_ping=True)
    database = sa.engine.make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _wal(dbapi_connection, _record):  # readers never block the writer, nor the reverse
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
    return engine


def _with_installed_driver(url: Any) -> Any:
    """``postgresql://`` means psycopg2 to SQLAlchemy; use psycopg 3 (what dialab installs)
    when psycopg2 is missing. ``postgres://`` (Heroku's spelling) is accepted too."""
    if url.drivername not in ("postgresql", "postgres"):
        return url
    try:
        import psycopg2  # noqa: F401
        return url.set(drivername="postgresql")
    except ImportError:
        return url.set(drivername="postgresql+psycopg")


def _is_busy(err: Exception) -> bool:
    text = str(getattr(err, "orig", err)).lower()
    return "locked" in text or "busy" in text or "deadlock" in text


def _safe_url(url: str) -> str:
    """The URL without its password."""
    try:
        import sqlalchemy as sa

        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL: show its scheme only
        return url.split("://", 1)[0] + "://..."
