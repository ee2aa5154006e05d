"""The runtime cache: what `auto` decided on this machine, and the exported models engines read, kept across runs.

Two kinds of entry, each named by the SHA-256 of its key (a JSON object):
- artifacts/<hash>/: an exported model (ONNX file or OpenVINO IR folder, `model` inside) with `entry.json` (its
  key, size and when it was made); key: the model's identity, the export format and precision, the versions of the
  packages that made it. Built once, read by every later run that needs it.
- checked/<hash>.json: that a checkpoint file of these bytes (its SHA-256) was loaded here and its tensors matched
  the digest it records, so later opens read its header only (`runtimes.source`).
- decisions/<hash>.json: what auto chose for a model on a machine (engine, precision, the artifact it opens) with
  every candidate's measured speed and gate figures; key: the model's identity, the device (CPU capability and
  flags, or the GPU's name), the engines' versions, the batch size and threads.
Engines may keep their own compiled forms under compiled/<engine>/ (OpenVINO's CACHE_DIR, TensorRT engines).

Where: GANBATCH_CACHE, else the platform's user cache folder (platformdirs; ~/.cache/ganbatch on Linux). Several
processes of one machine may fill it at once: an entry is built under a lock of its own (filelock) and appears
whole (written under a temporary name, then renamed). An entry that cannot be read is removed and made again. The
artifacts and compiled models are bounded in size (GANBATCH_CACHE_MAX_MB, default 4096): past it the compiled models
go, then the least recently used artifacts.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

CACHE_ENV = "GANBATCH_CACHE"
MAX_MB_ENV = "GANBATCH_CACHE_MAX_MB"
DEFAULT_MAX_MB = 4096
ENTRY_FILE = "entry.json"


def default_root() -> Path:
    """GANBATCH_CACHE, else the user cache folder of this platform."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    import platformdirs

    return platformdirs.user_cache_path("ganbatch")


def key_hash(key: dict) -> str:
    """The name of an entry: SHA-256 of its key as canonical JSON (24 hex digits)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Entry:
    """One cache entry, for `ganbatch cache`: kind ("artifact" or "decision"), name, key, size in bytes, last use
    (seconds since the epoch) and, for decisions, what was chosen."""

    kind: str
    name: str
    key: dict
    size: int
    used: float
    content: dict


class RuntimeCache:
    """The cache at root (default: `default_root()`), its artifacts bounded to max_bytes."""

    def __init__(self, root: Path | str | None = None, max_bytes: int | None = None):
        self.root = Path(root) if root is not None else default_root()
        if max_bytes is None:
            max_bytes = int(float(os.environ.get(MAX_MB_ENV, DEFAULT_MAX_MB)) * 1024**2)
        self.max_bytes = max_bytes

    # ------------------------------------------------------------------------------------------------ layout

    def _folder(self, kind: str) -> Path:
        folder = self.root / kind
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def lock(self, name: str) -> FileLock:
        """The lock under which entry `name` is built (a file under locks/; held by one process at a time)."""
        return FileLock(str(self._folder("locks") / f"{name}.lock"))

    def compiled_folder(self, engine: str) -> Path:
        """Where engine may keep its compiled models."""
        folder = self._folder("compiled") / engine
        folder.mkdir(exist_ok=True)
        return folder

    # --------------------------------------------------------------------------------------------- artifacts

    def artifact(self, key: dict, build: Callable[[Path], Path]) -> Path:
        """The artifact for key: its path when cached (marked as used), else `build(path)` writes it (a file or a
        folder at path) under the entry's lock and it is kept. The returned path stays valid while the entry is
        not evicted: an engine reads it when it opens."""
        name = key_hash(key)
        folder = self._folder("artifacts") / name
        found = self._complete_artifact(folder)
        if found is not None:
            return found
        with self.lock(name):
            found = self._complete_artifact(folder)  # another process may have built it meanwhile
            if found is not None:
                return found
            _remove(folder)
            with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=folder.parent) as work:
                work = Path(work)
                built = build(work / "model")
                entry = {"key": key, "size": _size(built), "made": time.time(), "file": built.name}
                (work / ENTRY_FILE).write_text(json.dumps(entry))
                os.replace(work, folder)  # whole or not at all
                work.mkdir()  # TemporaryDirectory removes what stands at its name on exit
        self.evict(keep=name)
        return folder / built.name

    def _complete_artifact(self, folder: Path) -> Path | None:
        try:
            entry = json.loads((folder / ENTRY_FILE).read_text())
            path = folder / entry["file"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not path.exists():
            return None
        os.utime(folder / ENTRY_FILE)  # marks it as recently used
        return path

    def discard_artifact(self, key: dict) -> None:
        """Remove the artifact for key (one that could not be opened: it is made again next time)."""
        _remove(self._folder("artifacts") / key_hash(key))

    # --------------------------------------------------------------------------------------------- decisions

    def _read(self, kind: str, key: dict) -> dict | None:
        path = self._folder(kind) / f"{key_hash(key)}.json"
        try:
            stored = json.loads(path.read_text())
            if stored["key"] != json.loads(json.dumps(key)):
                raise ValueError("key differs")
            return stored["decision"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            return None

    def _write(self, kind: str, key: dict, content: dict) -> None:
        folder = self._folder(kind)
        name = key_hash(key)
        with tempfile.NamedTemporaryFile("w", dir=folder, prefix=f".{name}-", suffix=".tmp", delete=False) as tmp:
            json.dump({"key": key, "decision": content, "made": time.time()}, tmp)
        os.replace(tmp.name, folder / f"{name}.json")

    def decision(self, key: dict) -> dict | None:
        """The decision stored for key, or None (a missing or unreadable one; an unreadable one is removed)."""
        return self._read("decisions", key)

    def store_decision(self, key: dict, decision: dict) -> None:
        """Keep decision for key (written whole: a temporary file, then renamed)."""
        self._write("decisions", key, decision)

    def discard_decision(self, key: dict) -> None:
        """Remove the decision for key."""
        (self._folder("decisions") / f"{key_hash(key)}.json").unlink(missing_ok=True)

    def checked(self, file_sha256: str, digest: str) -> bool:
        """Whether a file of these bytes was loaded here and found to hold tensors of this digest."""
        return self._read("checked", {"file": file_sha256, "digest": digest}) is not None

    def note_checked(self, file_sha256: str, digest: str) -> None:
        """Note that a file of these bytes holds tensors of this digest (checked by loading it)."""
        self._write("checked", {"file": file_sha256, "digest": digest}, {"checked": True})

    # ----------------------------------------------------------------------------------------- size, listing

    def evict(self, keep: str | None = None) -> list[str]:
        """Remove the least recently used artifacts (never `keep`) until they fit max_bytes; their names. The
        engines' compiled models go first, whole (an engine compiles again what it misses)."""
        artifacts = [entry for entry in self.entries() if entry.kind == "artifact"]
        total = sum(entry.size for entry in artifacts)
        compiled = self.root / "compiled"
        if compiled.exists() and total + _size(compiled) > self.max_bytes:
            _remove(compiled)
        removed = []
        for entry in sorted(artifacts, key=lambda entry: entry.used):
            if total <= self.max_bytes:
                break
            if entry.name == keep:
                continue
            _remove(self._folder("artifacts") / entry.name)
            total -= entry.size
            removed.append(entry.name)
        return removed

    def entries(self) -> list[Entry]:
        """Every readable entry, artifacts then decisions."""
        found = []
        for folder in sorted(self._folder("artifacts").iterdir()):
            try:
                entry = json.loads((folder / ENTRY_FILE).read_text())
                found.append(Entry("artifact", folder.name, entry["key"], int(entry["size"]),
                                   (folder / ENTRY_FILE).stat().st_mtime, entry))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        for path in sorted(self._folder("decisions").glob("*.json")):
            try:
                stored = json.loads(path.read_text())
                found.append(Entry("decision", path.stem, stored["key"], path.stat().st_size,
                                   path.stat().st_mtime, stored["decision"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return found

    def size(self) -> int:
        """Bytes the cache holds on disk."""
        return _size(self.root) if self.root.exists() else 0

    def clear(self) -> int:
        """Remove every entry and compiled model; the bytes freed."""
        freed = self.size()
        for kind in ("artifacts", "decisions", "checked", "compiled"):
            _remove(self.root / kind)
        return freed
