"""Small versioned torch files of our own (the AU regressor, the AU estimator): a dict of `format`, `version`, `config`
(JSON text) and `state_dict`, loaded with `weights_only=True`."""
import json
from pathlib import Path


def load_versioned(path: Path, *, format: str, version: int, what: str,
                   error: type[Exception]) -> tuple[dict, dict]:
    """(state_dict, config) of the file at path; `error` naming the file (and `what` it should be) when it is
    missing, unreadable, of another format or of another version."""
    import torch  # here, not at the top: only the stages that read such a file load torch

    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no {what} file there")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch reports unreadable files with many exception types
        raise error(f"{path}: not a readable torch file ({exc})") from exc
    if not isinstance(content, dict) or content.get("format") != format:
        raise error(f"{path}: not an {what} file (expected format {format!r})")
    if content.get("version") != version:
        raise error(f"{path}: {what} format version {content.get('version')!r}, expected {version}")
    return content["state_dict"], json.loads(content["config"])
