"""The runner of `kind: synth` jobs (`ganbatch.runner` protocol): plan and write a synthetic data set to a folder, a
file:// URI or an S3 prefix; beside the pure `ganbatch.synth`, which imports no storage or schema."""
import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ganbatch.io import storage
from ganbatch.jobs.synth import SynthJob
from ganbatch.synth.dataset import DatasetSummary, write_dataset


@dataclass(frozen=True)
class SynthResult:
    """What run_synth wrote: `outputs["data"]` is the data set's URI (the job's `out`)."""

    ok: bool
    outputs: dict[str, str]
    summary: DatasetSummary


def plan_synth(job: SynthJob) -> str:
    """One line: how many images of which size and expression mix go where."""
    return (
        f"{job.identities} identities x {job.per_identity} images = {job.identities * job.per_identity} "
        f"images of {job.size}x{job.size} px -> {job.out} (layouts: {', '.join(job.layouts)}; "
        f"expressions neutral:prototype:sparse {job.neutral_weight:g}:{job.prototype_weight:g}:{job.sparse_weight:g}; "
        f"test fraction {job.test_fraction:g} of identities; seed {job.seed}; runs in this process)"
    )


def run_synth(job: SynthJob) -> SynthResult:
    """Render the data set into a temporary folder, then copy it to `job.out` with the storage module."""
    with tempfile.TemporaryDirectory(prefix="ganbatch-synth-") as staging:
        summary = write_dataset(
            staging, job.identities, job.per_identity, size=job.size, seed=job.seed, layouts=tuple(job.layouts),
            test_fraction=job.test_fraction, contact_sheet=job.contact_sheet, mix=job.expression_mix(),
        )
        for file in sorted(Path(staging).rglob("*")):
            if file.is_file():
                storage.upload_file(file, storage.join(job.out, *file.relative_to(staging).parts))
    return SynthResult(ok=True, outputs={"data": job.out}, summary=dataclasses.replace(summary, out_dir=job.out))
