"""A run's generator, for `ganbatch export RUN` (ganbatch.export_job) and the model a finished run writes.

It comes from the run's latest readable checkpoint (see `checkpoints`): a folder whose state.pt cannot be read (an
upload cut short) is skipped for the previous one.
"""
import tempfile
from pathlib import Path

from ganbatch.errors import ExportError
from ganbatch.families import get_family
from ganbatch.io import storage
from ganbatch.models.checkpoint import GeneratorInfo, describe_generator
from ganbatch.models.networks import AttentionGenerator
from ganbatch.train.checkpoints import download_checkpoint, list_checkpoints
from ganbatch.train.state import (
    JOB_FILE,
    STATE_FILE,
    ResumeError,
    model_config,
    parse_job,
    read_state,
    verify_checkpoint,
)


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
                local = download_checkpoint(uri, Path(folder) / str(step))
                verify_checkpoint(local)
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
