"""`kind: export`: a training run's or any model's generator as a ganbatch checkpoint, ONNX file or OpenVINO IR."""
from typing import ClassVar, Literal, Optional

from pydantic import Field

from ganbatch.choices import EXPORT_FORMATS, EXPORT_PRECISIONS
from ganbatch.jobs.common import StrictModel, Uri


class ExportJob(StrictModel):
    """Export the generator of `source`; the result carries the model's config, so `--model` takes it anywhere."""

    kind: Literal["export"] = "export"
    # keys of run_export's result.outputs, which later pipeline steps can refer to as ${steps.NAME.KEY}
    OUTPUTS: ClassVar[tuple[str, ...]] = ("model",)
    source: Uri = Field(description="a training run (OUT/NAME, local or s3://; its latest checkpoint) or any model "
                                    "--model takes (demo, a checkpoint of ours or a published layout)")
    out: Uri = Field(description="where to write the generator: a .pt checkpoint, a .onnx file or an OpenVINO IR "
                                 "folder")
    format: Optional[Literal[EXPORT_FORMATS]] = Field(
        None, description="output format; default from out: .onnx -> onnx, .pt/.pth -> pt, otherwise an OpenVINO "
                          "folder")
    precision: Literal[EXPORT_PRECISIONS] = Field(
        "fp32", description="weights of an onnx/openvino export; int8 is post-training quantisation (needs "
                            "ganbatch[cpu-fast])")
    calibration: str = Field("synth", description="int8 calibration inputs: synth (synthetic faces), or a folder of "
                                                  "face crops")
    trust_pickle: bool = Field(False, description="allow checkpoints whose unpickling runs code (only for files you "
                                                  "trust)")
