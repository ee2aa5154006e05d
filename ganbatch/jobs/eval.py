"""`kind: eval`: a generator's quality on held-out synthetic identities with known ground truth (`ganbatch.eval`)."""
from typing import ClassVar, Literal, Optional

from pydantic import Field

from ganbatch.jobs.common import Runtime, StrictModel, Uri


class EvalJob(StrictModel):
    """Measure a generator: PSNR/SSIM, AU accuracy, identity and background preservation and smoothness, each next
    to the copy-the-input baseline."""

    kind: Literal["eval"] = "eval"
    # keys of run_eval's result.outputs, which later pipeline steps can refer to as ${steps.NAME.KEY}
    OUTPUTS: ClassVar[tuple[str, ...]] = ("out", "report")
    model: str = Field(description="generator to evaluate: a checkpoint path, an s3:// URI or 'demo' (the bundled "
                                   "model)")
    trust_pickle: bool = Field(False, description="allow checkpoints whose unpickling runs code (only for files you "
                                                  "trust)")
    identities: int = Field(8, ge=1, description="number of held-out synthetic identities")
    seed: int = Field(0, ge=0, description="evaluation seed; identities come from seed 10000 + SEED, so they never "
                                           "match a data set written with a seed below 10000")
    random_pairs: int = Field(4, ge=0, description="random (source, target) expression pairs per identity, besides "
                                                   "neutral -> each preset")
    path_frames: int = Field(16, ge=2, description="frames of the interpolated clip used for the smoothness metrics")
    out: Optional[Uri] = Field(None, description="write the full report as JSON here")
    report: Optional[Uri] = Field(None, description="also write an HTML report with plots (per-AU errors, "
                                                    "smoothness, sample strips)")
    device: str = Field("cpu", description="torch device for the generator (cpu, cuda...)")
    runtime: Runtime = Field("auto", description="inference engine (auto: the fastest here that passes the quality "
                                                 "gate, kept in the runtime cache; onnxruntime/openvino need "
                                                 "ganbatch[cpu-fast])")
    chunk_size: int = Field(16, ge=1, description="frames per generator batch")
