"""Local files that appear under their final name only when complete (standard library only).

A writer gets a hidden temporary sibling ``.<name>.tmp-<random>``, renamed into place on success and removed on
failure; a folder being replaced is swapped out as ``.<name>.old-<random>`` and then deleted.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

# names of the temporaries atomic_local_path makes (and of a replaced folder's old copy)
_TEMPORARY_NAME = re.compile(r"^\..+\.(tmp|old)-[0-9a-f]{8}$")


def is_temporary(name: str) -> bool:
    """Whether a file name is one of atomic_local_path's temporaries (or a replaced folder's old copy)."""
    return bool(_TEMPORARY_NAME.match(name))


@contextlib.contextmanager
def atomic_local_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling ``.<name>.tmp-<random>`` of ``path``; rename it to ``path`` on success.

    The caller creates a file or a folder at the yielded path. On success it replaces ``path`` (an existing folder
    is swapped out and deleted); on an exception the temporary file or folder is removed and the exception
    propagates. The parent folder is created when missing.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if tmp.is_dir() and final.is_dir():
            old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old)
        else:
            os.replace(tmp, final)
    except BaseException:
        remove(tmp)
        raise


def remove(path: Path) -> None:
    """Delete a file or a folder tree (not following a link); nothing when it is not there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
