"""Scratch folders in the system's temporary directory that a killed process leaves behind only until the next run
on that machine (standard library only).

A scratch folder is named after its process, ``ganbatch-<kind>-<pid>-<random>``, and removed when its `with` block
ends; `remove_orphans(kind)` deletes the folders of that kind whose process is gone (a worker killed mid-encode, an
interrupted command). A folder of a live process is never touched, so several runs can share the machine.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


@contextlib.contextmanager
def scratch_dir(kind: str) -> Iterator[Path]:
    """A fresh scratch folder for this process (see the module doc), removed with its contents on exit."""
    path = Path(tempfile.mkdtemp(prefix=f"ganbatch-{kind}-{os.getpid()}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_orphans(kind: str) -> int:
    """Delete the scratch folders of `kind` whose process no longer runs; how many were deleted."""
    pattern = re.compile(rf"^ganbatch-{re.escape(kind)}-(\d+)-")
    removed = 0
    for entry in Path(tempfile.gettempdir()).iterdir():
        match = pattern.match(entry.name)
        if match and entry.is_dir() and not _process_alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed
