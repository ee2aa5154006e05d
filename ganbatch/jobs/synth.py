"""`kind: synth`: a synthetic face data set with exact AU and landmark ground truth."""
from typing import ClassVar, Literal

from pydantic import Field

from ganbatch.jobs.common import StrictModel, Uri

SynthLayout = Literal["ganimation", "openface", "landmarks"]


class SynthJob(StrictModel):
    """Render `identities x per_identity` synthetic faces into data-set layouts."""

    kind: Literal["synth"] = "synth"
    # keys of run_synth's result.outputs, which later pipeline steps can refer to as ${steps.NAME.KEY}
    OUTPUTS: ClassVar[tuple[str, ...]] = ("data",)
    out: Uri = Field(description="output folder or s3:// prefix")
    identities: int = Field(40, ge=1, description="number of face identities")
    per_identity: int = Field(20, ge=1, description="images (expressions) per identity")
    size: int = Field(128, ge=32, le=1024, description="image size in pixels (square)")
    seed: int = Field(0, description="random seed; the same seed gives the same data set")
    layouts: list[SynthLayout] = Field(
        default_factory=lambda: ["ganimation", "openface", "landmarks"], min_length=1,
        description="what to write: ganimation (imgs/, aus_openface.pkl, id lists), openface (CSV), landmarks (68-point)",
    )
    test_fraction: float = Field(0.2, ge=0, lt=1, description="fraction of identities held out in test_ids.csv")
    contact_sheet: bool = Field(True, description="write contact_sheet.png (identities x expressions)")
