"""One run at a time per destination: a lock object `DEST/.ganbatch-lock.json` naming its owner, kept fresh by a
heartbeat.

The lock is created atomically, so of two runs started at once exactly one gets it: locally by hard-linking a
complete temporary file to the lock's name (fails when the name exists, like O_EXCL, and a reader never sees a
half-written lock); on S3 by a conditional PUT (`If-None-Match: *`). Its owner (host, pid, run id, start time) and a
heartbeat timestamp are JSON. A thread rewrites the heartbeat every `heartbeat_every` seconds, conditionally: on S3
with `If-Match` on the ETag it wrote last, locally only while the file still holds what it wrote last. A lock whose
heartbeat is older than `stale_after` seconds (or whose owner process is gone, on the same host) is stale, and the
next run takes it over with the same kind of conditional replace, so only one of several runs waiting for it wins.
A run that finds the lock held by a live owner fails with DestinationLockedError, naming the holder. The name starts
with '.', so listings of the destination (existing outputs, inputs) never see it.

Timestamps are wall-clock seconds of each host: hosts that share an S3 destination should keep their clocks in sync
(NTP) to well within `stale_after`.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from botocore.exceptions import BotoCoreError, ClientError

from ganbatch.io import storage
from ganbatch.errors import JobError

LOCK_NAME = ".ganbatch-lock.json"
STALE_AFTER = 60.0  # seconds without a heartbeat after which a lock is taken over
_ATTEMPTS = 3

log = logging.getLogger(__name__)


class DestinationError(JobError):
    """The destination's lock cannot be read or written (an unwritable folder, a missing bucket, ...)."""


class DestinationLockedError(JobError):
    """Another live run holds the destination; `owner` says which."""

    def __init__(self, message: str, owner: Optional[LockOwner] = None):
        super().__init__(message)
        self.owner = owner

    def __reduce__(self):
        return type(self), (str(self), self.owner)


@dataclass(frozen=True)
class LockOwner:
    """Who holds a destination: host, process id, run id, start and last heartbeat (seconds since the epoch)."""

    host: str
    pid: int
    run_id: str
    started: float
    heartbeat: float

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Optional[LockOwner]:
        """The owner a lock's content names, or None when it is not a lock written by ganbatch."""
        try:
            fields = json.loads(data.decode())
            return cls(str(fields["host"]), int(fields["pid"]), str(fields["run_id"]), float(fields["started"]),
                       float(fields["heartbeat"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def describe(self, now: float) -> str:
        started = datetime.fromtimestamp(self.started, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        return (f"run {self.run_id} (host {self.host}, pid {self.pid}), started {started}, last heartbeat "
                f"{max(0.0, now - self.heartbeat):.0f} s ago")


@dataclass(frozen=True)
class _Found:
    """A lock as read: its owner (None when unreadable), a token for conditional replacement, its modification."""

    owner: Optional[LockOwner]
    token: object
    modified: float


class _LocalLock:
    """The lock file of a local destination folder."""

    def __init__(self, folder: str):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.where = str(self.path)

    def _temporary(self, data: bytes) -> Path:
        tmp = self.folder / f".{LOCK_NAME}.tmp-{uuid.uuid4().hex[:8]}"
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return tmp

    def create(self, data: bytes) -> Optional[object]:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self._temporary(data)
        try:
            os.link(tmp, self.path)  # atomic; fails when the lock exists
        except FileExistsError:
            return None
        finally:
            tmp.unlink(missing_ok=True)
        return data

    def read(self) -> Optional[_Found]:
        try:
            data = self.path.read_bytes()
            modified = self.path.stat().st_mtime
        except FileNotFoundError:
            return None
        return _Found(LockOwner.from_bytes(data), data, modified)

    def refresh(self, token: object, data: bytes) -> Optional[object]:
        """Rewrite this run's own lock (a whole file renamed over it, so it never disappears) while it still holds
        `token`, what this run wrote last; None when another run has taken it over."""
        current = self.read()
        if current is None or current.token != token:
            return None
        tmp = self._temporary(data)
        os.replace(tmp, self.path)
        return data

    def take_over(self, token: object, data: bytes) -> Optional[object]:
        """Replace a stale lock that holds `token` with `data`; None when it changed or another run won.

        The stale lock is first renamed to a unique name (of several racing runs one wins the rename) and checked
        to be the one judged stale; then `data` is created as for a new lock.
        """
        current = self.read()
        if current is None or current.token != token:
            return None
        tomb = self.folder / f".{LOCK_NAME}.old-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(self.path, tomb)
        except FileNotFoundError:
            return None
        try:
            if tomb.read_bytes() != token:  # another run replaced it meanwhile: put theirs back
                with contextlib.suppress(FileExistsError):
                    os.link(tomb, self.path)
                return None
            return self.create(data)
        finally:
            tomb.unlink(missing_ok=True)

    def delete(self, token: object) -> None:
        current = self.read()
        if current is not None and current.token == token:
            self.path.unlink(missing_ok=True)


class _S3Lock:
    """The lock object of an S3 destination prefix; conditional PUT/DELETE on its ETag."""

    def __init__(self, prefix: str):
        self.where = storage.join(prefix, LOCK_NAME)
        self.bucket, _, self.key = self.where.removeprefix("s3://").partition("/")

    @staticmethod
    def _code(error: ClientError) -> str:
        return str(error.response.get("Error", {}).get("Code", ""))

    def _put(self, data: bytes, **condition) -> Optional[object]:
        try:
            answer = storage.s3_client().put_object(Bucket=self.bucket, Key=self.key, Body=data,
                                                    ContentType="application/json", **condition)
        except ClientError as error:
            if self._code(error) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409",
                                     "NoSuchKey", "404"):
                return None
            raise
        return answer["ETag"]

    def create(self, data: bytes) -> Optional[object]:
        return self._put(data, IfNoneMatch="*")

    def read(self) -> Optional[_Found]:
        try:
            answer = storage.s3_client().get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as error:
            if self._code(error) in ("NoSuchKey", "404"):
                return None
            raise
        return _Found(LockOwner.from_bytes(answer["Body"].read()), answer["ETag"],
                      answer["LastModified"].timestamp())

    def refresh(self, token: object, data: bytes) -> Optional[object]:
        return self._put(data, IfMatch=token)

    take_over = refresh

    def delete(self, token: object) -> None:
        with contextlib.suppress(ClientError):
            storage.s3_client().delete_object(Bucket=self.bucket, Key=self.key, IfMatch=token)


def _process_gone(owner: LockOwner) -> bool:
    """Whether the owner ran on this host in a process that no longer exists."""
    if owner.host != socket.gethostname():
        return False
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class DestinationLock:
    """A claim on one destination (see the module doc): `acquire()`, then `release()`; `lost` turns true when
    the heartbeat found the lock taken over (this run was too slow to refresh it)."""

    def __init__(self, out_uri: str, *, stale_after: float = STALE_AFTER, heartbeat_every: Optional[float] = None,
                 run_id: Optional[str] = None):
        self.out = out_uri
        self.stale_after = stale_after
        self.heartbeat_every = heartbeat_every if heartbeat_every is not None else stale_after / 4
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self._store = _S3Lock(out_uri) if storage.is_s3(out_uri) else _LocalLock(out_uri)
        self._token: object = None
        self._owner: Optional[LockOwner] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.lost = False
        self.took_over: Optional[LockOwner] = None

    @property
    def where(self) -> str:
        """The lock file or object."""
        return self._store.where

    def _stale(self, found: _Found, now: float) -> bool:
        if found.owner is None:  # not ganbatch's JSON: judge by its age
            return now - found.modified > self.stale_after
        return now - found.owner.heartbeat > self.stale_after or _process_gone(found.owner)

    def _fresh_owner(self, now: float) -> LockOwner:
        started = self._owner.started if self._owner else now
        return LockOwner(socket.gethostname(), os.getpid(), self.run_id, started, now)

    def acquire(self) -> DestinationLock:
        """Take the lock (taking over a stale one) and start the heartbeat; DestinationLockedError when a live run
        holds it, DestinationError when it cannot be read or written."""
        try:
            for _ in range(_ATTEMPTS):
                now = time.time()
                owner = self._fresh_owner(now)
                token = self._store.create(owner.to_bytes())
                if token is None:
                    found = self._store.read()
                    if found is None:
                        continue  # released in between: try again
                    if not self._stale(found, now):
                        raise self._held(found, now)
                    token = self._store.take_over(found.token, owner.to_bytes())
                    if token is None:
                        continue  # someone else took it over or refreshed it first: look again
                    self.took_over = found.owner
                    log.warning("%s: took over a stale lock (%s)", self.out,
                                found.owner.describe(now) if found.owner else "unreadable lock")
                self._token, self._owner = token, owner
                break
            else:
                found = self._store.read()
                raise self._held(found, time.time()) if found else DestinationError(
                    f"--out {self.out}: could not claim the destination (its lock {self.where} kept changing)")
        except (OSError, ClientError, BotoCoreError, storage.StorageError) as error:
            raise DestinationError(f"--out {self.out}: cannot write the lock {self.where} ({_reason(error)})") \
                from None
        self._thread = threading.Thread(target=self._beat, name="ganbatch-destination-lock", daemon=True)
        self._thread.start()
        return self

    def _held(self, found: _Found, now: float) -> DestinationLockedError:
        holder = found.owner.describe(now) if found.owner else f"an unreadable lock, modified " \
                                                               f"{max(0.0, now - found.modified):.0f} s ago"
        return DestinationLockedError(
            f"--out {self.out} is in use by another ganbatch run: {holder}; wait for it to end (a lock is taken "
            f"over after {self.stale_after:g} s without a heartbeat), or remove {self.where} if that run is gone",
            found.owner)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_every):
            try:
                owner = self._fresh_owner(time.time())
                token = self._store.refresh(self._token, owner.to_bytes())
            except (OSError, ClientError, BotoCoreError) as error:
                log.warning("%s: could not refresh the destination lock (%s)", self.out, _reason(error))
                continue
            if token is None:
                self.lost = True
                log.error("%s: the destination lock was taken over by another run", self.out)
                return
            self._token, self._owner = token, owner

    def release(self) -> None:
        """Stop the heartbeat and remove the lock, if it is still this run's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._token is not None and not self.lost:
            with contextlib.suppress(OSError, ClientError, BotoCoreError):
                self._store.delete(self._token)
        self._token = None


def _reason(error: Exception) -> str:
    if isinstance(error, storage.StorageError):
        return error.reason
    if isinstance(error, OSError):
        return f"{error.strerror or type(error).__name__}" + (f": {error.filename}" if error.filename else "")
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code") or error)
    return str(error)


@contextlib.contextmanager
def claim_destination(out_uri: str, *, stale_after: float = STALE_AFTER, heartbeat_every: Optional[float] = None,
                      run_id: Optional[str] = None) -> Iterator[DestinationLock]:
    """Hold the destination `out_uri` (a folder or s3:// prefix) for the body of the `with`; see the module doc.

    Raises DestinationLockedError (a JobError: one line, exit status 1) when another live run holds it and
    DestinationError when the lock cannot be written (e.g. --out is not writable).
    """
    lock = DestinationLock(out_uri, stale_after=stale_after, heartbeat_every=heartbeat_every, run_id=run_id)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()
