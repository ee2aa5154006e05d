"""Finding a run's checkpoints and reading its generator (`ganbatch export RUN --out model.pt|.onnx|IR`).

A run (OUT/NAME, local or s3://) keeps its checkpoints in `checkpoint_<step>/` folders (zero-padded steps). The
latest is the highest step whose folder holds both `state.pt` and `job.json`; a folder whose state.pt cannot be read
(an upload cut short) is skipped for the previous one.
"""
import re
import tempfile
from pathlib import Path

from ganbatch.errors import ExportError
from ganbatch.io import storage
from ganbatch.models.checkpoint import GeneratorInfo, describe_generator, save_generator
from ganbatch.families import get_family
from ganbatch.models.networks import AttentionGenerator
from ganbatch.train.state import (
    COMPLETE_FILE,
    JOB_FILE,
    STATE_FILE,
    ResumeError,
    model_config,
    parse_job,
    read_state,
    verify_checkpoint,
)

_CHECKPOINT = re.compile(r"^checkpoint_(\d+)$")


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


def _download_checkpoint(uri: str, folder: Path) -> Path:
    """The checkpoint at uri copied into folder and checked against its completion marker (when it has one)."""
    folder.mkdir()
    for name in (STATE_FILE, JOB_FILE, COMPLETE_FILE):
        try:
            storage.download_file(storage.join(uri, name), folder / name)
        except storage.StorageError:
            if name != COMPLETE_FILE:  # checkpoints written before markers existed have none
                raise
    verify_checkpoint(folder)
    return folder


def run_generator(run: str) -> tuple[AttentionGenerator, GeneratorInfo, int]:
    """The generator of the run's latest readable checkpoint: (generator, info with the run's provenance in its
    config, step). Raises ExportError when the run has no readable checkpoint."""
    checkpoints = list_checkpoints(run)
    if not checkpoints:
        raise ExportError(f"{run}: no checkpoints (checkpoint_<step>/ with {STATE_FILE} and {JOB_FILE}) found")
    problems = []
    with tempfile.TemporaryDirectory(prefix="ganbatch-export-") as folder:
        for step, uri in checkpoints:
            try:
                local = _download_checkpoint(uri, Path(folder) / str(step))
                job = parse_job((local / JOB_FILE).read_text(), storage.join(uri, JOB_FILE))
                content = read_state(local / STATE_FILE)
            except (ResumeError, storage.StorageError, RuntimeError, EOFError) as error:
                problems.append(f"{uri}: {error}")
                continue
            family = get_family(job.family)
            generator = family.generator_cls(conv_dim=job.network.conv_dim, repeat_num=job.network.res_blocks,
                                             options=family.training_options)
            generator.load_state_dict(content["generator"])
            step = int(content["step"])
            config = model_config(job, step, run)
            info = describe_generator(generator.eval(), image_size=config["image_size"], source=uri, config=config)
            return generator, info, step
    raise ExportError(f"{run}: no readable checkpoint: " + "; ".join(problems))


def export_model(run: str, out: str) -> int:
    """Write the generator of the run's latest readable checkpoint to `out` (local or s3://) in ganbatch's format,
    with the run's provenance in its config; returns the checkpoint's step."""
    generator, info, step = run_generator(run)
    with tempfile.TemporaryDirectory(prefix="ganbatch-export-") as folder:
        save_generator(generator, Path(folder) / "model.pt", info.config)
        storage.upload_file(Path(folder) / "model.pt", out)
    return step
