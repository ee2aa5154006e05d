"""Read and write files named by plain paths, ``file://`` URIs or ``s3://bucket/key`` URIs.

Local writes go to a hidden temporary sibling (``.<name>.tmp-<random>``) that is renamed into place only when
complete, so a file under its final name is always whole. S3 objects appear only when a PUT or multipart upload
completes, and nothing here ever writes a partial object under the final key.

S3 clients come from ``boto3.session.Session()``, so endpoint, profile, region and credentials follow the usual boto3
configuration: ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` (read natively by botocore >= 1.31), ``AWS_PROFILE``,
``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID`` ..., ``~/.aws/config``. One client is cached per process and AWS
environment (clients are thread-safe; the cache is guarded by a lock).

Transient S3 faults (connection refused or reset, timeouts, 5xx answers, throttling) are retried twice over:
botocore's own retry mode retries each request (mode ``standard`` and 3 attempts unless ``AWS_RETRY_MODE`` /
``AWS_MAX_ATTEMPTS`` say otherwise, with bounded connect and read timeouts), and every whole-object operation here
(a read, a write, an upload or download, a listing, an existence check) is retried as a whole, with backoff, for up
to ``retry_seconds()`` in total (``RETRY_SECONDS`` by default; see :func:`retry_budget`), which covers what one
request's retries cannot: a multipart upload restarted, a stream cut while reading, an outage longer than botocore's
few attempts. After that budget the operation fails with a :class:`StorageError` saying how long it tried.

Naming (`is_s3`, `join`, `absolute`, `StorageError`) and atomic local writes (`atomic_local_path`) are here too, from
``ganbatch.io.uris`` and ``ganbatch.io.atomic``, which code that must not import boto3 (the model layer) uses directly.
"""
from __future__ import annotations

import contextlib
import contextvars
import fnmatch
import logging
import mimetypes
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import boto3
from boto3.exceptions import RetriesExceededError, S3TransferFailedError, S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError as BotoConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
)

from ganbatch.io import uris
from ganbatch.io.atomic import atomic_local_path, is_temporary, remove
from ganbatch.io.uris import StorageError, absolute, basename, existing_local_path, is_s3, join

__all__ = ["MAX_LISTED", "RETRY_SECONDS", "StorageError", "absolute", "atomic_local_path", "download_file", "exists",
           "guess_content_type", "is_s3", "is_transient", "join", "list_uris", "local_copy", "local_entries",
           "pyarrow_filesystem", "read_bytes", "remove_stale_temporaries", "retry_budget", "retry_seconds",
           "s3_client", "upload_file", "write_bytes"]

log = logging.getLogger(__name__)

_GLOB_CHARS = "*?["
MAX_LISTED = 200_000  # entries one local listing may look through (a glob or folder far wider than meant)

RETRY_SECONDS = 120.0  # default total time a whole-object S3 operation is retried through transient faults
_CONNECT_TIMEOUT = 10.0
_READ_TIMEOUT = 60.0
_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
                    "InternalError", "ServiceUnavailable", "503", "500", "502", "504"}
# per thread of control (a ContextVar, not a global): the in-process animate stream runs stages in threads
_retry_seconds: contextvars.ContextVar[float] = contextvars.ContextVar("retry_seconds", default=RETRY_SECONDS)

# Content types for the files ganbatch writes; anything else falls back to the mimetypes module.
_CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".gif": "image/gif",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".csv": "text/csv",
    ".txt": "text/plain",
}

_S3_CLIENTS: dict[tuple, object] = {}
_S3_CLIENTS_LOCK = threading.Lock()


def guess_content_type(name: str | os.PathLike) -> str:
    """MIME type for a file name from its extension, ``application/octet-stream`` when unknown."""
    suffix = Path(str(name)).suffix.lower()
    return _CONTENT_TYPES.get(suffix) or mimetypes.guess_type(str(name))[0] or "application/octet-stream"


def s3_client():
    """The process's boto3 S3 client for the current AWS environment variables (created once, thread-safe)."""
    aws_env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    key = (os.getpid(), aws_env)
    with _S3_CLIENTS_LOCK:
        if key not in _S3_CLIENTS:
            retries = {"mode": os.environ.get("AWS_RETRY_MODE", "standard"),
                       "max_attempts": int(os.environ.get("AWS_MAX_ATTEMPTS", 3))}
            config = Config(retries=retries, connect_timeout=_CONNECT_TIMEOUT, read_timeout=_READ_TIMEOUT)
            _S3_CLIENTS[key] = boto3.session.Session().client("s3", config=config)
        return _S3_CLIENTS[key]


def pyarrow_filesystem(uri: str | os.PathLike):
    """(path, pyarrow S3 filesystem) for ``s3://bucket/prefix``, with :func:`s3_client`'s settings: its endpoint
    (when not AWS's own), region (the bucket's when none is configured), retry mode and attempts, and timeouts.

    Ray Train writes checkpoints through pyarrow.fs only, so this gives it the run files' S3 settings. Credentials
    are left to the AWS SDK's chain, which reads the same variables and profile as boto3 and, unlike a copy of
    them, renews expiring ones.
    """
    import pyarrow.fs

    bucket, key = _split_s3(uri)
    client = s3_client()
    retries = client.meta.config.retries
    strategy = (pyarrow.fs.AwsDefaultS3RetryStrategy if retries.get("mode") == "legacy"
                else pyarrow.fs.AwsStandardS3RetryStrategy)(max_attempts=retries.get("max_attempts", 3))
    endpoint = client.meta.endpoint_url
    custom = not urlparse(endpoint).hostname.endswith(".amazonaws.com")
    region = boto3.session.Session().region_name or (None if custom else pyarrow.fs.resolve_s3_region(bucket))
    filesystem = pyarrow.fs.S3FileSystem(
        endpoint_override=endpoint if custom else None, region=region, retry_strategy=strategy,
        connect_timeout=client.meta.config.connect_timeout, request_timeout=client.meta.config.read_timeout)
    return f"{bucket}/{key}".rstrip("/"), filesystem


def retry_seconds() -> float:
    """The total time whole-object S3 operations are retried through transient faults here (this thread's budget)."""
    return _retry_seconds.get()


@contextlib.contextmanager
def retry_budget(seconds: float) -> Iterator[None]:
    """Retry whole-object S3 operations for up to ``seconds`` in total inside the block (0: no retry beyond
    botocore's own); the previous budget is restored on exit."""
    token = _retry_seconds.set(float(seconds))
    try:
        yield
    finally:
        _retry_seconds.reset(token)


def is_transient(error: BaseException) -> bool:
    """Whether an S3 error may pass if tried again: no connection, a reset or timeout, a 5xx answer, throttling."""
    if isinstance(error, (S3UploadFailedError, S3TransferFailedError, RetriesExceededError)):
        cause = error.__context__ or error.__cause__
        return cause is not None and is_transient(cause)
    if isinstance(error, (BotoConnectionError, HTTPClientError, IncompleteReadError)):
        return True
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500 or _error_code(error) in _TRANSIENT_CODES
    return False


def _with_retries(uri: str | os.PathLike, operation):
    """operation() retried with backoff through transient S3 faults for up to retry_seconds() in total."""
    deadline = time.monotonic() + retry_seconds()
    delay = 0.5
    while True:
        try:
            return operation()
        except Exception as error:
            if not is_transient(error):
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                raise StorageError(str(uri), f"S3 unreachable: gave up after retrying for {retry_seconds():g} s "
                                             f"({_describe(error)})") from error
            log.warning("%s: %s; retrying for up to %.0f s more", uri, _describe(error), left)
            time.sleep(min(delay, left))
            delay = min(delay * 2, 8.0)


def _describe(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return f"{_error_code(error)}: {error.response.get('Error', {}).get('Message') or error}"
    cause = error.__context__ if isinstance(error, (S3UploadFailedError, S3TransferFailedError)) else None
    return " ".join(str(cause or error).split())


def list_uris(uri: str | os.PathLike, *, recursive: bool = False, suffixes: Iterable[str] | None = None) -> list[str]:
    """Sorted files in a folder, S3 prefix or (local only) glob pattern.

    ``recursive`` descends into subfolders (and makes ``**`` match across folders in globs). ``suffixes`` keeps
    names ending in one of them, case-insensitively (e.g. ``(".jpg", ".png")``). Hidden names (starting with ``.``,
    which includes in-progress temporary files) are skipped. Local results are plain paths, S3 results
    ``s3://`` URIs. A missing local folder raises :class:`StorageError`; an S3 prefix with no objects lists empty.
    """
    wanted = tuple(s.lower() for s in suffixes) if suffixes is not None else None
    uris = _list_s3(str(uri), recursive) if is_s3(uri) else _list_local(uri, recursive)
    return sorted(
        u for u in uris
        if not basename(u).startswith(".") and (wanted is None or u.lower().endswith(wanted))
    )


def read_bytes(uri: str | os.PathLike) -> bytes:
    """The whole content of a file or S3 object."""
    with _storage_errors(uri):
        if is_s3(uri):
            bucket, key = _split_s3(uri)
            return _with_retries(uri, lambda: s3_client().get_object(Bucket=bucket, Key=key)["Body"].read())
        return uris.local_path(uri).read_bytes()


def write_bytes(uri: str | os.PathLike, data: bytes, *, content_type: str | None = None) -> None:
    """Write ``data`` atomically (S3 ContentType guessed from the extension when not given)."""
    with _storage_errors(uri):
        if is_s3(uri):
            bucket, key = _split_s3(uri)
            content_type = content_type or guess_content_type(key)
            _with_retries(uri, lambda: s3_client().put_object(Bucket=bucket, Key=key, Body=data,
                                                              ContentType=content_type))
            return
        with atomic_local_path(uris.local_path(uri)) as tmp:
            tmp.write_bytes(data)


def upload_file(
    local_path: str | os.PathLike,
    uri: str | os.PathLike,
    *,
    content_type: str | None = None,
    transfer_config: TransferConfig | None = None,
) -> None:
    """Copy a local file to ``uri``: an S3 managed transfer (multipart above the threshold) or an atomic local copy.

    ``content_type`` defaults to a guess from the destination's extension; ``transfer_config`` tunes boto3's
    multipart threshold, chunk size and concurrency.
    """
    if not Path(local_path).is_file():
        raise StorageError(str(local_path), "not found (no such local file to upload)")
    with _storage_errors(uri):
        if is_s3(uri):
            bucket, key = _split_s3(uri)
            extra = {"ContentType": content_type or guess_content_type(key)}
            _with_retries(uri, lambda: s3_client().upload_file(os.fspath(local_path), bucket, key, ExtraArgs=extra,
                                                               Config=transfer_config))
            return
        with atomic_local_path(uris.local_path(uri)) as tmp:
            shutil.copyfile(local_path, tmp)


def download_file(uri: str | os.PathLike, local_path: str | os.PathLike) -> None:
    """Copy ``uri`` to a local file, which appears under its final name only when complete."""
    with _storage_errors(uri), atomic_local_path(local_path) as tmp:
        if is_s3(uri):
            bucket, key = _split_s3(uri)
            _with_retries(uri, lambda: s3_client().download_file(bucket, key, os.fspath(tmp)))
        else:
            shutil.copyfile(uris.local_path(uri), tmp)


def exists(uri: str | os.PathLike) -> bool:
    """Whether a local path or an S3 object exists (a missing bucket raises :class:`StorageError`)."""
    if not is_s3(uri):
        return uris.local_path(uri).exists()
    bucket, key = _split_s3(uri)
    with _storage_errors(uri):
        try:
            _with_retries(uri, lambda: s3_client().head_object(Bucket=bucket, Key=key))
            return True
        except ClientError as error:
            if _error_code(error) not in ("404", "NoSuchKey"):
                raise
        # A HEAD answers 404 both for a missing key and a missing bucket; only the latter is an error.
        try:
            _with_retries(uri, lambda: s3_client().head_bucket(Bucket=bucket))
        except ClientError as error:
            if _error_code(error) in ("404", "NoSuchBucket"):
                raise StorageError(str(uri), f"bucket {bucket!r} does not exist") from error
            raise
        return False


@contextlib.contextmanager
def local_copy(uri: str | os.PathLike) -> Iterator[Path]:
    """Yield a local path holding ``uri``'s content: the path itself when local, a temporary download for S3."""
    if not is_s3(uri):
        yield existing_local_path(uri)
        return
    with tempfile.TemporaryDirectory(prefix="ganbatch-") as tmp_dir:
        path = Path(tmp_dir) / basename(str(uri))
        download_file(uri, path)
        yield path


def _list_local(uri: str | os.PathLike, recursive: bool) -> list[str]:
    path = str(uris.local_path(uri))
    if not any(char in path for char in _GLOB_CHARS):
        folder = Path(path)
        if not folder.is_dir():
            raise StorageError(str(uri), "not found (no such folder)" if not folder.exists() else "not a folder")
    with _storage_errors(uri):
        return [entry for entry in local_entries(path, recursive=recursive) if os.path.isfile(entry)]


def local_entries(path: str | os.PathLike, *, recursive: bool = False) -> list[str]:
    """Every entry that is not a folder (files, broken links, FIFOs...) in a local folder or matching a local glob,
    hidden names and hidden folders left out; `recursive` descends into sub-folders (and lets `**` match across
    folders in a glob).

    Symbolic links to folders are followed, but each real folder is entered once, so a link loop (`loop -> .`) or
    two links to one folder list its files once. StorageError when the walk meets more than `MAX_LISTED` entries
    (a glob or folder far wider than meant). The standard library's glob follows links without end (a loop hangs
    it), hence this walk: os.walk pruned by real path, with glob's matching per path part (fnmatch).
    """
    path = os.fspath(path)
    parts = path.split(os.sep)
    wild = next((i for i, part in enumerate(parts) if any(char in part for char in _GLOB_CHARS)), None)
    if wild is None:
        root, pattern = path, None
        depth = None if recursive else 1
    else:  # a relative glob starting with a wildcard (`*.png`) is looked for here
        root, pattern = (os.sep.join(parts[:wild]) or os.sep) if wild else os.curdir, parts[wild:]
        depth = None if recursive and "**" in pattern else len(pattern)
    found, visited, seen = [], 0, set()
    for parent, folders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(parent)
        relative = os.path.relpath(parent, root)
        level = 0 if relative == "." else relative.count(os.sep) + 1
        if real in seen:
            folders[:] = []
            continue
        seen.add(real)
        visited += len(folders) + len(names)
        if visited > MAX_LISTED:
            raise StorageError(path, f"more than {MAX_LISTED} files and folders to look through; name a narrower "
                                     "folder or glob")
        # real folders before links to them, so a folder is listed under its own name where it can be
        folders[:] = sorted((name for name in folders if not name.startswith(".")
                             and os.path.realpath(os.path.join(parent, name)) not in seen),
                            key=lambda name: os.path.islink(os.path.join(parent, name)))
        if depth is not None and level + 1 >= depth:
            folders[:] = []
        for name in names:
            entry = os.path.join(parent, name) if root != os.curdir else os.path.relpath(os.path.join(parent, name))
            if name.startswith("."):
                continue
            if pattern is None or _glob_match(os.path.relpath(entry, root).split(os.sep), pattern, recursive):
                found.append(entry)
    return sorted(found)


def _glob_match(parts: list[str], pattern: list[str], recursive: bool) -> bool:
    """Whether path parts match glob pattern parts (`**` matches any number of parts when recursive, else one)."""
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**" and recursive:
        return any(_glob_match(parts[skip:], rest, recursive) for skip in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], head) and _glob_match(parts[1:], rest, recursive)


def _list_s3(uri: str, recursive: bool) -> list[str]:
    bucket, prefix = _split_s3(uri)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    options = {"Bucket": bucket, "Prefix": prefix}
    if not recursive:
        options["Delimiter"] = "/"
    def listing():
        pages = s3_client().get_paginator("list_objects_v2").paginate(**options)
        return [
            f"s3://{bucket}/{obj['Key']}"
            for page in pages for obj in page.get("Contents", []) if not obj["Key"].endswith("/")
        ]

    with _storage_errors(uri):
        return _with_retries(uri, listing)


def remove_stale_temporaries(uri: str | os.PathLike, *, keep: tuple[str, ...] = ()) -> int:
    """Remove what interrupted writes left below a destination folder or prefix; returns how many were removed.

    Local: the hidden ``.<name>.tmp-<random>`` files and folders (and ``.old-`` copies) of :func:`atomic_local_path`
    whose writer was killed. S3: incomplete multipart uploads under the prefix (an S3 object never appears half
    written, but the parts of an upload that was never completed are kept, and billed, until aborted). Names
    starting with one of `keep` are left alone. Call it only when no other run writes to the same destination.
    """
    if is_s3(uri):
        bucket, prefix = _split_s3(uri)
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        with _storage_errors(uri):
            uploads = _with_retries(uri, lambda: s3_client().list_multipart_uploads(Bucket=bucket, Prefix=prefix))
            stale = uploads.get("Uploads", [])
            for upload in stale:
                s3_client().abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        return len(stale)
    folder = uris.local_path(uri)
    if not folder.is_dir():
        return 0
    stale = [path for path in folder.rglob(".*")
             if is_temporary(path.name) and not path.name.startswith(keep)]
    for path in stale:
        remove(path)
    return len(stale)


def _split_s3(uri: str | os.PathLike) -> tuple[str, str]:
    parsed = urlparse(str(uri))
    if not parsed.netloc:
        raise StorageError(str(uri), "S3 URI has no bucket (expected s3://bucket/key)")
    return parsed.netloc, parsed.path.lstrip("/")


@contextlib.contextmanager
def _storage_errors(uri: str | os.PathLike) -> Iterator[None]:
    """Translate boto3/botocore/OS errors into :class:`StorageError` naming ``uri``."""
    try:
        yield
    except StorageError:
        raise
    except ClientError as error:
        raise StorageError(str(uri), _client_error_reason(error, uri)) from error
    except S3UploadFailedError as error:  # boto3 wraps the ClientError of a failed managed upload
        cause = error.__context__
        reason = _client_error_reason(cause, uri) if isinstance(cause, ClientError) else str(error)
        raise StorageError(str(uri), reason) from error
    except BotoCoreError as error:
        raise StorageError(str(uri), _botocore_reason(error)) from error
    except FileNotFoundError as error:
        raise StorageError(str(uri), f"not found ({error.filename})") from error
    except PermissionError as error:
        raise StorageError(str(uri), f"permission denied ({error.filename})") from error
    except OSError as error:
        raise StorageError(str(uri), error.strerror or str(error)) from error


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "unknown"))


def _client_error_reason(error: ClientError, uri: str | os.PathLike) -> str:
    code = _error_code(error)
    if code == "NoSuchBucket":
        return f"bucket {urlparse(str(uri)).netloc!r} does not exist"
    if code in ("NoSuchKey", "404", "NotFound"):
        return "not found"
    if code in ("AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return f"permission denied ({code})"
    return f"{code}: {error.response.get('Error', {}).get('Message') or error}"


def _botocore_reason(error: BotoCoreError) -> str:
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
    return str(error)
