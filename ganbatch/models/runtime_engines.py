"""Runtimes for exported graphs: ONNX Runtime, OpenVINO and TensorRT, each behind the `Runtime` call.

Each takes a local exported model (an ONNX file, or for OpenVINO an IR folder or ONNX file) and its GeneratorInfo;
`ganbatch.models.runtime.open_runtime` makes those from any model URI (exporting a checkpoint on the fly). The
engines' packages are imported when a runtime is built, never at import time; a missing one raises
RuntimeUnavailableError naming the pip extra.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ganbatch.models.checkpoint import GeneratorInfo
from ganbatch.models.export import IR_MODEL, OUTPUTS, ExtraMissingError, fix_spatial_size, require
from ganbatch.models.runtime import Runtime, RuntimeUnavailableError


def _import(module: str, extra: str = "cpu-fast"):
    try:
        return require(module, extra)
    except ExtraMissingError as error:
        raise RuntimeUnavailableError(str(error)) from error


def _feeds(x: torch.Tensor, cond: torch.Tensor) -> dict[str, np.ndarray]:
    return {"x": np.ascontiguousarray(x.numpy()), "cond": np.ascontiguousarray(cond.numpy())}


class OnnxRuntime(Runtime):
    """An ONNX file in ONNX Runtime: the CPU execution provider, or CUDA's on a cuda device (when installed).

    The graph's precision (fp32, fp16 weights, int8 QDQ) is the file's; inputs and outputs are float32 either way.
    """

    name = "onnxruntime"

    def __init__(self, path, info: GeneratorInfo, *, device="cpu", precision: str = "fp32",
                 threads: int | None = None):
        ort = _import("onnxruntime")
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
        return [torch.from_numpy(out) for out in self.session.run(list(OUTPUTS), _feeds(x, cond))]


class OpenVinoRuntime(Runtime):
    """An OpenVINO IR folder (or ONNX file) on OpenVINO's CPU plugin.

    precision fp32 and bf16 set the inference precision hint (OpenVINO would otherwise pick bf16 by itself on CPUs
    that have it); an int8 or fp16 IR runs with its own weights, the rest of the graph in fp32. Height and width
    are fixed to the model's image size when it is known (faster kernels); batch stays dynamic.
    """

    name = "openvino"

    def __init__(self, path, info: GeneratorInfo, *, device="cpu", precision: str = "fp32",
                 threads: int | None = None):
        ov = _import("openvino")
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
        super().__init__(info, device, precision, threads)
        self.compiled = core.compile_model(fix_spatial_size(model, info.image_size), "CPU", config)
        self.request = self.compiled.create_infer_request()

    def _run(self, x, cond):
        feeds = _feeds(x, cond)
        self.request.infer([feeds["x"], feeds["cond"]])
        return [torch.from_numpy(self.request.get_output_tensor(index).data.copy()) for index in range(len(OUTPUTS))]


class TensorRTRuntime(Runtime):
    """An ONNX file built into a TensorRT engine (fp16 when asked) on a CUDA device; larger batches run max_batch
    frames at a time.

    Not testable on CPU-only machines: it needs the `tensorrt` extra and a CUDA device (see scripts/gpu_check.sh).
    """

    name = "tensorrt"

    def __init__(self, path, info: GeneratorInfo, *, device="cuda", precision: str = "fp16",
                 threads: int | None = None, max_batch: int = 256):
        trt = _import("tensorrt", extra="tensorrt")
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
