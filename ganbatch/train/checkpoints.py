"""A run's checkpoint folders: their names, which are complete, the latest, and a local copy of one.

A run (OUT/NAME, local or s3://) keeps its checkpoints in `checkpoint_<step>/` folders (zero-padded steps, so names
sort by step), written through Ray Train. A folder counts as complete when it holds both `state.pt` and `job.json`;
whether their content is whole is checked against `complete.json` once copied (`state.verify_checkpoint`).
"""
import re
from pathlib import Path

from ganbatch.io import storage

STATE_FILE = "state.pt"
JOB_FILE = "job.json"
COMPLETE_FILE = "complete.json"  # {file name: SHA-256} of STATE_FILE and JOB_FILE, written after them (train.state)

_CHECKPOINT = re.compile(r"^checkpoint_(\d+)$")


def checkpoint_dir_name(step: int) -> str:
    """The name of the checkpoint folder of a step (zero-padded so that names sort by step)."""
    return f"checkpoint_{step:08d}"


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
    complete = [(int(_CHECKPOINT.match(name).group(1)), storage.join(run, name))
                for name, names in contents.items() if {STATE_FILE, JOB_FILE} <= names]
    return sorted(complete, reverse=True)


def latest_checkpoint(run: str) -> tuple[int, str] | None:
    """(step, URI) of the run's latest complete checkpoint, or None when it has none."""
    checkpoints = list_checkpoints(run)
    return checkpoints[0] if checkpoints else None


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
