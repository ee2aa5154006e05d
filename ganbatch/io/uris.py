"""What a file's name says, without the cloud stack: plain paths, ``file://`` URIs and ``s3://bucket/key`` URIs.

Standard library only, so the model layer can name files without importing boto3 (see ``ganbatch.io.storage`` for
reading and writing them).
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse


class StorageError(Exception):
    """A storage operation on ``uri`` failed for ``reason`` (not found, missing bucket, permission, ...)."""

    def __init__(self, uri: str, reason: str):
        super().__init__(f"{uri}: {reason}")
        self.uri = uri
        self.reason = reason

    def __reduce__(self):  # picklable with its fields (raised inside Ray workers)
        return type(self), (self.uri, self.reason)


def is_s3(uri: str | os.PathLike) -> bool:
    """True for ``s3://bucket/key`` URIs."""
    return str(uri).startswith("s3://")


def join(uri: str | os.PathLike, *parts: str) -> str:
    """Append path components to a local path or URI (``/``-separated for URIs)."""
    uri = str(uri)
    if "://" not in uri:
        return os.path.join(uri, *parts)
    return "/".join([uri.rstrip("/"), *(part.strip("/") for part in parts)])


def local_path(uri: str | os.PathLike) -> Path:
    """The local path a plain path or ``file://`` URI names; StorageError for a remote host or another scheme."""
    uri = os.fspath(uri)
    if uri.startswith("file://"):
        parsed = urlparse(uri)
        if parsed.netloc not in ("", "localhost"):
            raise StorageError(uri, f"file:// URI names a remote host {parsed.netloc!r}")
        return Path(unquote(parsed.path))
    if "://" in uri:
        raise StorageError(uri, "unsupported URI scheme (use a path, file:// or s3://)")
    return Path(uri)


def absolute(uri: str | os.PathLike) -> str:
    """The one absolute form of a location (workers run in other folders): s3:// URIs as they are; a plain path or
    file:// URI as an absolute local path, ``~`` expanded."""
    uri = os.fspath(uri)
    if is_s3(uri):
        return uri
    path = unquote(urlparse(uri).path) if uri.startswith("file://") else uri
    return os.path.abspath(os.path.expanduser(path))


def existing_local_path(uri: str | os.PathLike) -> Path:
    """local_path(uri), or StorageError "not found" when nothing is there."""
    path = local_path(uri)
    if not path.exists():
        raise StorageError(str(uri), "not found")
    return path


def basename(uri: str) -> str:
    """The last component of a path or URI (a trailing ``/`` ignored)."""
    return uri.rstrip("/").rsplit("/", 1)[-1]
