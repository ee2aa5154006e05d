"""The TensorRT engine: an ONNX file built into a TensorRT engine (fp16 when asked) on a CUDA device."""
from __future__ import annotations

from pathlib import Path

import torch

from ganbatch.models.checkpoint import GeneratorInfo
from ganbatch.models.export import OUTPUTS
from ganbatch.runtimes.base import Runtime, RuntimeUnavailableError, import_engine
from ganbatch.runtimes.registry import Engine

ENGINE = Engine("tensorrt", "TensorRTRuntime", reads=("onnx",), export="onnx", precisions={"cuda": ("fp32", "fp16")},
                package="tensorrt")


class TensorRTRuntime(Runtime):
    """An ONNX file built into a TensorRT engine (fp16 when asked) on a CUDA device; larger batches run max_batch
    frames at a time.

    Not testable on CPU-only machines: it needs the `tensorrt` extra and a CUDA device (see scripts/gpu_check.sh).
    """

    name = "tensorrt"

    def __init__(self, path, info: GeneratorInfo, *, device="cuda", precision: str = "fp16",
                 threads: int | None = None, max_batch: int = 256):
        trt = import_engine("tensorrt", extra="tensorrt")
        device = torch.device(device)
        if device.type != "cuda" or not torch.cuda.is_available():
            raise RuntimeUnavailableError("the tensorrt runtime needs a CUDA device (--device cuda)")
        if precision not in ("fp32", "fp16"):
            raise ValueError(f"the tensorrt runtime runs fp32 or fp16, not {precision}")
        super().__init__(info, device, precision, None)
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(Path(path).read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeUnavailableError(f"TensorRT cannot parse {path}: {errors}")
        config = builder.create_builder_config()
        if precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        size = info.image_size or 128
        profile = builder.create_optimization_profile()
        for index in range(network.num_inputs):
            tensor = network.get_input(index)
            shape = [size if dim == -1 else dim for dim in tensor.shape][1:]
            profile.set_shape(tensor.name, [1, *shape], [max(1, max_batch // 2), *shape], [max_batch, *shape])
        config.add_optimization_profile(profile)
        engine_bytes = builder.build_serialized_network(network, config)
        if engine_bytes is None:
            raise RuntimeUnavailableError(f"TensorRT could not build an engine from {path}")
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(engine_bytes)
        self.context = self.engine.create_execution_context()
        self.max_batch = max_batch

    def _run(self, x, cond):
        outputs = []
        for start in range(0, len(x), self.max_batch):
            inputs = {"x": x[start:start + self.max_batch].to(self.device).contiguous(),
                      "cond": cond[start:start + self.max_batch].to(self.device).contiguous()}
            for name, tensor in inputs.items():
                self.context.set_input_shape(name, tuple(tensor.shape))
                self.context.set_tensor_address(name, tensor.data_ptr())
            chunk = []
            for name in OUTPUTS:
                out = torch.empty(tuple(self.context.get_tensor_shape(name)), device=self.device)
                self.context.set_tensor_address(name, out.data_ptr())
                chunk.append(out)
            stream = torch.cuda.current_stream(self.device)
            self.context.execute_async_v3(stream.cuda_stream)
            stream.synchronize()
            outputs.append(chunk)
        return [torch.cat([chunk[index] for chunk in outputs]) for index in range(len(OUTPUTS))]
