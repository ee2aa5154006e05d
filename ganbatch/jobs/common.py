"""Building blocks shared by every job kind: strict models, URI fields, cluster execution settings."""
import re
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ganbatch.choices import PRECISIONS
from ganbatch.runtimes.registry import RUNTIMES

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class StrictModel(BaseModel):
    """A schema node that rejects unknown keys, re-validates on assignment and takes finite numbers only (NaN and
    infinity pass every bound check, as comparisons with NaN are false, and reached the renderer as black frames)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def check_uri(value: str) -> str:
    """Accept a local path, a `file://` URI or a well-formed `s3://bucket/key` URI."""
    if not value.strip():
        raise ValueError("must not be empty")
    match = _SCHEME.match(value)
    if match is None:
        return value
    scheme = match.group(1).lower()
    if scheme == "file":
        return value
    if scheme != "s3":
        raise ValueError(f"unsupported URI scheme '{scheme}://'; use a local path, file:// or s3://bucket/prefix")
    bucket = value[len("s3://"):].split("/", 1)[0]
    if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket):
        raise ValueError("the S3 bucket name is not valid (3-63 lowercase letters, digits, '.', '-')")
    return value


Uri = Annotated[str, AfterValidator(check_uri)]
Precision = Literal[PRECISIONS]
# Inference engines of a generator (see ganbatch.runtimes.registry).
Runtime = Literal[RUNTIMES]


class Execution(StrictModel):
    """Where and how a job runs: a local Ray started in-process, or an existing cluster."""

    address: Optional[str] = Field(
        None, description="Ray cluster address (e.g. ray://head:10001 or auto); default: RAY_ADDRESS, else a local Ray"
    )
    workers: Optional[int] = Field(None, ge=1, description="number of Ray workers; default: one per GPU, else 1")
    gpus_per_worker: float = Field(0.0, ge=0, description="GPUs per worker (0 = CPU workers)")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs reserved per worker")
    precision: Precision = Field("fp32", description="fp16/bf16 autocast (GPU)")
