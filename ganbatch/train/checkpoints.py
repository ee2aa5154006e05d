"""A run's checkpoint folders: their names, which are complete, the latest, and a local copy of one.

A run (OUT/NAME, local or s3://) keeps its checkpoints in `checkpoint_<step>/` folders (zero-padded steps, so names
sort by step; `checkpoint_<step>-<n>` when a resume had to skip an unreadable folder of that name), written through
Ray Train. A folder counts as complete when it holds both `state.pt` and `job.json`;
whether their content is whole is checked against `complete.json` once copied (`verify_checkpoint`).
"""
import hashlib
import json
import re
import tempfile
from pathlib import Path

from ganbatch.io import storage

STATE_FILE = "state.pt"
JOB_FILE = "job.json"
COMPLETE_FILE = "complete.json"  # {file name: SHA-256} of STATE_FILE and JOB_FILE, written after them (train.state)


class ResumeError(ValueError):
    """A run's checkpoint does not fit the job (different family or network sizes)."""


class IncompleteCheckpointError(ResumeError):
    """A checkpoint folder whose files are missing, cut short, unreadable or do not match its completion marker."""


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checkpoint(folder: Path) -> bool:
    """Whether folder holds a checkpoint its completion marker vouches for (False: written before markers
    existed, so nothing to check); IncompleteCheckpointError when a file is missing or does not match."""
    folder = Path(folder)
    for name in (STATE_FILE, JOB_FILE):
        if not (folder / name).is_file():
            raise IncompleteCheckpointError(f"{folder}: {name} is missing")
    if not (folder / COMPLETE_FILE).is_file():
        return False
    try:
        recorded = json.loads((folder / COMPLETE_FILE).read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        raise IncompleteCheckpointError(f"{folder}: {COMPLETE_FILE} is unreadable") from None
    for name in (STATE_FILE, JOB_FILE):
        if recorded.get(name) != file_sha256(folder / name):
            raise IncompleteCheckpointError(f"{folder}: {name} does not match {COMPLETE_FILE} (written or "
                                            "copied only in part, or changed since)")
    return True


_CHECKPOINT = re.compile(r"^checkpoint_(\d+)(?:-(\d+))?$")


def checkpoint_dir_name(step: int, taken: frozenset[str] = frozenset()) -> str:
    """The name of the checkpoint folder of a step (zero-padded so that names sort by step); when that name is
    `taken` (a checkpoint a resume skipped as unreadable is still there, under the name the step would get), the
    first free `checkpoint_<step>-<n>`: a new folder never shares a name with an old one, so Ray Train's list of
    checkpoints never holds one folder twice (its rotation removed such a folder twice and failed the run)."""
    name = f"checkpoint_{step:08d}"
    attempt = 0
    while name in taken:
        attempt += 1
        name = f"checkpoint_{step:08d}-{attempt}"
    return name


def checkpoint_order(name: str) -> tuple[int, int]:
    """(step, attempt) of a checkpoint folder's name, the order checkpoints were written in; (-1, -1) for others."""
    match = _CHECKPOINT.match(name)
    return (int(match.group(1)), int(match.group(2) or 0)) if match else (-1, -1)


def checkpoint_names(run: str) -> frozenset[str]:
    """The names of every checkpoint folder in the run, complete or not."""
    try:
        files = storage.list_uris(run, recursive=True)
    except storage.StorageError:
        return frozenset()
    prefix = run.rstrip("/") + "/"
    names = (uri[len(prefix):].replace("\\", "/").split("/")[0] for uri in files)
    return frozenset(name for name in names if _CHECKPOINT.match(name))


def list_checkpoints(run: str) -> list[tuple[int, str]]:
    """(step, URI) of the run's complete checkpoint folders (state.pt and job.json present), latest first."""
    try:
        files = storage.list_uris(run, recursive=True)
    except storage.StorageError:
        return []
    prefix = run.rstrip("/") + "/"
    contents: dict[str, set[str]] = {}
    for uri in files:
        parts = uri[len(prefix):].replace("\\", "/").split("/")
        if len(parts) == 2 and _CHECKPOINT.match(parts[0]):
            contents.setdefault(parts[0], set()).add(parts[1])
    complete = sorted((name for name, names in contents.items() if {STATE_FILE, JOB_FILE} <= names),
                      key=checkpoint_order, reverse=True)
    return [(checkpoint_order(name)[0], storage.join(run, name)) for name in complete]


def latest_checkpoint(run: str) -> tuple[int, str] | None:
    """(step, URI) of the run's latest complete checkpoint, or None when it has none."""
    checkpoints = list_checkpoints(run)
    return checkpoints[0] if checkpoints else None


def usable_checkpoint(run: str) -> tuple[tuple[int, str] | None, list[str]]:
    """(step, URI) of the run's newest checkpoint whose files its completion marker vouches for (None when none
    is), and why each newer one was skipped ('checkpoint_00000015: state.pt does not match ...'): the one a resume
    continues from. Each is copied to a temporary folder to be checked."""
    skipped = []
    for step, uri in list_checkpoints(run):
        try:
            with tempfile.TemporaryDirectory(prefix="ganbatch-check-") as folder:
                verify_checkpoint(download_checkpoint(uri, Path(folder)))
        except (IncompleteCheckpointError, storage.StorageError) as error:
            reason = str(error).replace(f"{folder}: ", "")
            skipped.append(f"{uri.rstrip('/').rsplit('/', 1)[-1]}: {reason}")
            continue
        return (step, uri), skipped
    return None, skipped


def download_checkpoint(uri: str, folder: Path) -> Path:
    """The checkpoint folder at uri copied into the local folder (made when missing); its completion marker too,
    when it has one (checkpoints written before markers existed have none). Raises StorageError."""
    folder = Path(folder)
    folder.mkdir(exist_ok=True)
    for name in (STATE_FILE, JOB_FILE, COMPLETE_FILE):
        source = storage.join(uri, name)
        if name != COMPLETE_FILE or storage.exists(source):
            storage.download_file(source, folder / name)
    return folder
