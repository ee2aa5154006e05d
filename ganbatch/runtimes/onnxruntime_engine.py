"""The ONNX Runtime engine: an ONNX file on the CPU execution provider, or CUDA's on a cuda device."""
from __future__ import annotations

import torch

from ganbatch.models.checkpoint import GeneratorInfo
from ganbatch.models.export import OUTPUTS
from ganbatch.runtimes.base import Runtime, RuntimeUnavailableError, graph_feeds, import_engine
from ganbatch.runtimes.registry import Engine

ENGINE = Engine("onnxruntime", "OnnxRuntime", reads=("onnx",), export="onnx",
                precisions={"cpu": ("fp32", "fp16", "int8"), "cuda": ("fp32", "fp16", "int8")},
                package="onnxruntime")


class OnnxRuntime(Runtime):
    """An ONNX file in ONNX Runtime: the CPU execution provider, or CUDA's on a cuda device (when installed).

    The graph's precision (fp32, fp16 weights, int8 QDQ) is the file's; inputs and outputs are float32 either way.
    """

    name = "onnxruntime"

    def __init__(self, path, info: GeneratorInfo, *, device="cpu", precision: str = "fp32",
                 threads: int | None = None):
        ort = import_engine("onnxruntime")
        device = torch.device(device)
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise RuntimeUnavailableError("onnxruntime has no CUDA execution provider here: "
                                              "pip install onnxruntime-gpu, or use --device cpu")
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
        elif device.type != "cpu":
            raise RuntimeUnavailableError(f"onnxruntime runs on cpu or cuda, not {device}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        if threads:
            options.intra_op_num_threads = threads
        super().__init__(info, device, precision, threads)
        self.session = ort.InferenceSession(str(path), options, providers=providers)

    def _run(self, x, cond):
        return [torch.from_numpy(out) for out in self.session.run(list(OUTPUTS), graph_feeds(x, cond))]


