"""A run's checkpoint folders: their names, which are complete, the latest, and a local copy of one.

A run (OUT/NAME, local or s3://) keeps its checkpoints in `checkpoint_<step>/` folders (zero-padded steps, so names
sort by step; `checkpoint_<step>-<n>` when a resume had to skip an unreadable folder of that name), written through
Ray Train. A folder counts as complete when it holds both `state.pt` and `job.json`;
whether their content is whole is checked against `complete.json` once copied (`state.verify_checkpoint`).
"""
import re
import tempfile
from pathlib import Path

from ganbatch.io import storage
from ganbatch.train.state import COMPLETE_FILE, JOB_FILE, STATE_FILE, IncompleteCheckpointError, verify_checkpoint

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
