"""`kind: aus`: photos and videos -> an OpenFace-style CSV of the 17 AU intensities, estimated from landmarks."""
from typing import ClassVar, Literal, Optional

from pydantic import Field

from ganbatch.jobs.common import StrictModel, Uri


class AusJob(StrictModel):
    """Estimate each face's action units (ganbatch's landmark AU estimator, no OpenFace): one CSV row per photo and
    per video frame, readable by `--source-aus` and `--aus-csv` as it is."""

    kind: Literal["aus"] = "aus"
    # keys of run_aus's result.outputs, which later pipeline steps can refer to as ${steps.NAME.KEY}
    OUTPUTS: ClassVar[tuple[str, ...]] = ("out",)
    inputs: list[Uri] = Field(min_length=1, description="photos and videos (.mp4, .webm, .gif, .mov, .avi, .mkv): "
                                                        "files, folders, globs, s3:// prefixes or .txt/.jsonl lists")
    out: Uri = Field(description="the CSV to write (local or s3://): name, frame, face, confidence, success, "
                                 "AU01_r ... AU45_r, error")
    recursive: bool = Field(False, description="also search sub-folders of input folders and prefixes")
    detector: Literal["auto", "face-alignment", "dlib"] = Field(
        "dlib", description="face detector and landmarks; the estimator was fitted on dlib's landmarks")
    estimator: Optional[Uri] = Field(None, description="an AU estimator file (default: the bundled one, "
                                                        "see docs/au_estimator.md)")
    allow_failures: bool = Field(False, description="exit 0 even when some inputs have no face or cannot be read")
