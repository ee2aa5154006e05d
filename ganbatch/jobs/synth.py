"""`kind: synth`: a synthetic face data set with exact AU and landmark ground truth."""
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, model_validator

from ganbatch.choices import DATASET_LAYOUTS
from ganbatch.jobs.common import StrictModel, Uri

if TYPE_CHECKING:
    from ganbatch.synth.dataset import ExpressionMix

SynthLayout = Literal[DATASET_LAYOUTS]


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
    # the expression mix: the defaults are ganbatch.synth.dataset.ExpressionMix's
    neutral_weight: float = Field(0.15, ge=0, allow_inf_nan=False, description="relative weight of neutral faces")
    prototype_weight: float = Field(0.45, ge=0, allow_inf_nan=False,
                                    description="relative weight of the named expressions (happy, sad, ...), scaled "
                                                "and jittered")
    sparse_weight: float = Field(0.40, ge=0, allow_inf_nan=False,
                                 description="relative weight of 1-4 AUs chosen at random, each at 0.5-5: the only "
                                             "kind that shows AUs alone, and the only one with AU25")
    contact_sheet: bool = Field(True, description="write contact_sheet.png (identities x expressions)")

    @model_validator(mode="after")
    def _some_expression_weight(self):
        if self.neutral_weight + self.prototype_weight + self.sparse_weight <= 0:
            raise ValueError("neutral_weight, prototype_weight and sparse_weight must not all be 0")
        return self

    def expression_mix(self) -> "ExpressionMix":
        """The three weights as the sampler takes them."""
        # imported here: the schema (and --help) needs no synthetic-face renderer
        from ganbatch.synth.dataset import ExpressionMix
        return ExpressionMix(self.neutral_weight, self.prototype_weight, self.sparse_weight)
