"""`runtime="auto"`: per worker, the fastest runtime and precision here whose output stays within tolerance of fp32.

The candidates come from the device and the CPU's capabilities: bf16 only where the CPU computes it natively
(AVX512_BF16 or AMX; on AVX2 it is emulated and slower than fp32), engines only when their package is installed,
int8 only for models exported as int8 (auto never quantises by itself). Then, unless probe=False, a short measured
probe: a few forward passes of a batch of synthetic faces per candidate, each compared with the fp32 reference
(PSNR of the image; max abs difference for fp32 engines) and timed; the fastest within tolerance wins. Without the
probe the first candidate of the preference order that opens is taken. Runtimes that fail to open are skipped, so
a missing extra falls back to torch.

Testing seam: the environment variable GANBATCH_RUNTIMES_MISSING (comma-separated package names; see
`ganbatch.models.export.missing_packages`), or the `missing` argument, makes runtimes count as not installed.
"""
from __future__ import annotations

import importlib.util
import logging
import math
import time
from dataclasses import dataclass, field

import torch

from ganbatch.models.export import missing_packages
from ganbatch.models.runtime import ModelSource, Runtime, RuntimeUnavailableError, TorchRuntime, build_runtime

log = logging.getLogger(__name__)

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
INT8_DOT_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")
# Minimum PSNR (dB, image in [-1, 1] as range 2) against fp32 per precision; fp32 engines: max abs difference.
MIN_PSNR_DB = {"bf16": 40.0, "fp16": 40.0, "int8": 35.0}
FP32_MAX_ABS = 1e-3
_PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "tensorrt": "tensorrt"}


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo is missing, e.g. macOS)."""
    try:
        with open(path) as cpuinfo:
            for line in cpuinfo:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def installed_runtimes(missing=None) -> tuple[str, ...]:
    """Runtimes whose package is importable here (torch always), minus `missing` / GANBATCH_RUNTIMES_MISSING."""
    if missing is None:
        missing = missing_packages()
    found = ["torch"] + [name for name, package in _PACKAGES.items() if importlib.util.find_spec(package)]
    return tuple(name for name in found if name not in set(missing))


@dataclass(frozen=True)
class Machine:
    """What auto decides from: the device, torch's CPU capability, the CPU flags and the installed runtimes."""

    device: torch.device
    cpu_capability: str
    flags: frozenset[str]
    runtimes: tuple[str, ...]

    @property
    def native_bf16(self) -> bool:
        """The CPU computes bf16 natively (AVX512_BF16 or AMX)."""
        return any(flag in self.flags for flag in NATIVE_BF16_FLAGS)

    def describe(self) -> str:
        """e.g. "cpu AVX512 (avx512_bf16 amx_bf16 amx_int8 avx512_vnni); runtimes torch, onnxruntime"."""
        shown = [flag for flag in (*NATIVE_BF16_FLAGS, *INT8_DOT_FLAGS) if flag in self.flags]
        where = f"{self.device} " if self.device.type != "cpu" else "cpu "
        return f"{where}{self.cpu_capability} ({' '.join(shown) or 'no bf16/int8 flags'}); " \
               f"runtimes {', '.join(self.runtimes)}"


def detect_machine(device: torch.device, missing=None) -> Machine:
    """This machine as auto sees it (see Machine)."""
    return Machine(torch.device(device), torch.backends.cpu.get_cpu_capability(), cpu_flags(),
                   installed_runtimes(missing))


def candidates(source: ModelSource, machine: Machine) -> list[tuple[str, str]]:
    """(runtime, precision) pairs worth trying for source on machine, in preference order (fastest expected
    first); the last is the safe fallback."""
    if machine.device.type == "cuda":
        order = [("tensorrt", "fp16"), ("torch", "fp16"), ("onnxruntime", "fp32"), ("torch", "fp32")]
    elif machine.native_bf16:
        order = [("openvino", "bf16"), ("onnxruntime", "fp32"), ("openvino", "fp32"), ("torch", "bf16"),
                 ("torch", "fp32")]
    else:  # AVX2 and others: bf16 would be emulated, slower than fp32
        order = [("onnxruntime", "fp32"), ("openvino", "fp32"), ("torch", "fp32")]
    if source.kind != "checkpoint":
        written = source.exported_precision
        readers = ("openvino",) if source.kind == "openvino" else ("onnxruntime", "openvino", "tensorrt")
        order = [(runtime, written if precision == "fp32" else precision) for runtime, precision in order
                 if runtime in readers and (precision == "fp32" or written == "fp32")]
        if written != "fp32":  # an int8/fp16 export runs as it was written, fastest engine first
            order = list(dict.fromkeys([(runtime, written) for runtime, _ in order]))
    return [(runtime, precision) for runtime, precision in order if runtime in machine.runtimes]


@dataclass
class ProbeResult:
    """One candidate's probe: frames/s, and its agreement with the fp32 reference (None for the reference)."""

    runtime: str
    precision: str
    fps: float = 0.0
    psnr_db: float | None = None
    max_abs: float | None = None
    error: str | None = None

    @property
    def within_tolerance(self) -> bool:
        """No error, and close enough to fp32 for its precision."""
        if self.error:
            return False
        if self.psnr_db is None:  # no fp32 reference to compare with: an int8 / fp16 export, used as written
            return True
        if self.precision == "fp32":
            return self.max_abs <= FP32_MAX_ABS
        return self.psnr_db >= MIN_PSNR_DB[self.precision]

    def describe(self) -> str:
        if self.error:
            return f"{self.runtime} {self.precision}: {self.error}"
        quality = f", {self.psnr_db:.1f} dB" if self.psnr_db is not None else ""
        return f"{self.runtime} {self.precision} {self.fps:.1f} fps{quality}"


def psnr_db(image: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR of generator images in [-1, 1] (peak-to-peak 2) against reference."""
    mse = float(((image.float() - reference.float()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(4.0 / mse)


def _timed(runtime: Runtime, x, cond, passes: int) -> tuple[float, torch.Tensor]:
    image = runtime(x, cond)[0]  # warm-up (first-call allocation, lazy compilation)
    best = math.inf
    for _ in range(passes):
        started = time.perf_counter()
        image = runtime(x, cond)[0]
        best = min(best, time.perf_counter() - started)  # the minimum is the least disturbed by other load
    return len(x) / best, image


@dataclass
class AutoChoice:
    """What auto found: the machine, the probe's rows (or the candidates tried) and the chosen one."""

    machine: Machine
    results: list[ProbeResult] = field(default_factory=list)

    def describe(self, chosen: Runtime) -> str:
        tried = "; ".join(result.describe() for result in self.results)
        return f"auto on {self.machine.describe()}: chose {chosen.name} {chosen.precision} of [{tried}]"


def choose_runtime(source: ModelSource, *, device: torch.device, threads: int | None = None, probe: bool = True,
                   probe_batch: int = 4, probe_passes: int = 2, missing=None) -> Runtime:
    """The fastest candidate runtime within tolerance (see the module docstring). Its `details` say what was
    tried and chosen (the line `describe()` ends with); its `auto` attribute holds the AutoChoice. When no
    candidate is within tolerance the last one (torch fp32 for checkpoints) is used."""
    machine = detect_machine(device, missing)
    choice = AutoChoice(machine)
    opened: list[tuple[ProbeResult, Runtime]] = []
    for runtime_name, precision in candidates(source, machine):
        result = ProbeResult(runtime_name, precision)
        choice.results.append(result)
        try:
            runtime = build_runtime(source, runtime_name, device=device, precision=precision, threads=threads)
        except (RuntimeUnavailableError, ValueError, RuntimeError, ImportError) as error:
            result.error = " ".join(str(error).split())[:160]
            log.info("auto runtime: %s %s unavailable: %s", runtime_name, precision, result.error)
            continue
        opened.append((result, runtime))
        if not probe:
            break
    if not opened:
        raise RuntimeUnavailableError(f"no runtime can run {source.info.source} here: "
                                      + "; ".join(result.describe() for result in choice.results))
    if probe:
        _probe(source, opened, probe_batch, probe_passes)
        usable = [pair for pair in opened if pair[0].within_tolerance] or [opened[-1]]
        runtime = max(usable, key=lambda pair: pair[0].fps)[1]
    else:
        runtime = opened[0][1]
    runtime.details = choice.describe(runtime)
    runtime.auto = choice
    return runtime


def _probe(source: ModelSource, opened: list[tuple[ProbeResult, Runtime]], batch_size: int, passes: int) -> None:
    """Time each opened candidate on one batch of synthetic faces and compare it with the fp32 reference: torch
    fp32 for checkpoints, else the first fp32 candidate (an int8 / fp16 export alone has none: used as written)."""
    from ganbatch.models.calibration import synthetic_batches

    batch = synthetic_batches(source.info, batches=1, batch_size=batch_size)[0]
    reference = None
    if source.kind == "checkpoint":
        reference = TorchRuntime(source.generator, source.info, device=opened[0][1].device)(*batch)[0]
    for result, runtime in opened:
        result.fps, image = _timed(runtime, *batch, passes)
        if reference is None and result.precision == "fp32":
            reference = image
        if reference is not None:
            result.psnr_db = psnr_db(image, reference)
            result.max_abs = float((image - reference).abs().max())
