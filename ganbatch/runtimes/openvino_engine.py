"""The OpenVINO engine: an IR folder (or ONNX file) on OpenVINO's CPU plugin; fp32, bf16 (a compute hint) or int8."""
from __future__ import annotations

from pathlib import Path

import torch

from ganbatch.models.checkpoint import GeneratorInfo
from ganbatch.models.export import IR_MODEL, OUTPUTS, fix_spatial_size
from ganbatch.runtimes.base import Runtime, RuntimeUnavailableError, graph_feeds, import_engine
from ganbatch.runtimes.registry import Engine

ENGINE = Engine("openvino", "OpenVinoRuntime", reads=("openvino", "onnx"), export="openvino",
                precisions={"cpu": ("fp32", "fp16", "bf16", "int8")}, package="openvino",
                keeps_compiled=True,
                # ONNX Runtime's int8 (QDQ) ONNX files compile and run here but come out wrong: the demo's eval
                # PSNR 30.5 dB, below the copy-the-input baseline, against 36.6 dB in ONNX Runtime
                misreads=("onnx:int8",))


class OpenVinoRuntime(Runtime):
    """An OpenVINO IR folder (or ONNX file) on OpenVINO's CPU plugin.

    precision fp32 and bf16 set the inference precision hint (OpenVINO would otherwise pick bf16 by itself on CPUs
    that have it); an int8 or fp16 IR runs with its own weights, the rest of the graph in fp32. Height and width
    are fixed to the model's image size when it is known (faster kernels); batch stays dynamic.
    """

    name = "openvino"

    def __init__(self, path, info: GeneratorInfo, *, device="cpu", precision: str = "fp32",
                 threads: int | None = None, compiled_cache: Path | None = None):
        ov = import_engine("openvino")
        device = torch.device(device)
        if device.type != "cpu":
            raise RuntimeUnavailableError(f"the openvino runtime runs on cpu here, not {device}")
        path = Path(path)
        core = ov.Core()
        model = core.read_model(str(path / IR_MODEL if path.is_dir() else path))
        config = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
                  "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        if compiled_cache is not None:
            config["CACHE_DIR"] = str(compiled_cache)
        super().__init__(info, device, precision, threads)
        self.compiled = core.compile_model(fix_spatial_size(model, info.image_size), "CPU", config)
        self.request = self.compiled.create_infer_request()

    def _run(self, x, cond):
        feeds = graph_feeds(x, cond)
        self.request.infer([feeds["x"], feeds["cond"]])
        return [torch.from_numpy(self.request.get_output_tensor(index).data.copy()) for index in range(len(OUTPUTS))]


