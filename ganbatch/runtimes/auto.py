"""`runtime="auto"`: the fastest engine and precision on this machine that passes the quality gate, measured once
per model and machine and kept in the runtime cache.

Candidates come from the device and the CPU: int8 (OpenVINO, quantised with NNCF on synthetic faces) where the CPU
has int8 dot products (VNNI or AMX); bf16 only where it computes bf16 natively (AVX512_BF16 or AMX; elsewhere it is
emulated and slower than fp32); fp32 engines everywhere; engines only when their package is installed. On CUDA:
TensorRT fp16, torch fp16/bf16, fp32. An exported model runs on the engines that read it, at the precision it was
written at. Tuning runs the candidates on the gate's path of synthetic faces (`ganbatch.runtimes.gate`): each
reduced-precision one must pass the gate against fp32; each is timed at the job's batch size; the fastest that
passes wins (the last candidate, torch fp32 for checkpoints, when none does). `ganbatch tune` tries every candidate;
a run that finds no decision stops at the first, in expected-speed order, that passes and beats the reference (a
cold run pays for fewer exports). The decision, with the tried candidates' figures, is stored under (model
identity, machine, engine versions, batch size, the gate's version): later runs open the chosen engine's cached
artifact directly, with no export and no probe. (Threads are not part of the key: a decision made with all of a
machine's cores stands for runs that give an actor fewer.)

Testing seam: GANBATCH_RUNTIMES_MISSING (comma-separated package names) or the `missing` argument makes engines
count as not installed.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import torch

from ganbatch.runtimes.base import Runtime, RuntimeUnavailableError
from ganbatch.runtimes.build import artifact_key, build_runtime, package_versions
from ganbatch.runtimes.cache import RuntimeCache, key_hash
from ganbatch.runtimes.gate import GATE_FACES, GATE_VERSION, GateFigures, gate_figures, gate_inputs
from ganbatch.runtimes.machine import Machine, detect_machine
from ganbatch.runtimes.registry import ENGINES
from ganbatch.runtimes.registry import engine as get_engine
from ganbatch.runtimes.source import ModelSource

log = logging.getLogger(__name__)

_ENGINE_PACKAGES = ("torch", "onnxruntime", "openvino", "nncf", "tensorrt")
# A candidate whose gate pass took longer than this is timed from that pass alone (a second one would cost more
# than its timing noise).
_SLOW_PASS_SECONDS = 1.5


def candidates(source: ModelSource, machine: Machine) -> list[tuple[str, str]]:
    """(runtime, precision) pairs worth trying for source on machine, fastest expected first; the last is the
    safe fallback."""
    if source.kind != "checkpoint":
        order = _exported_candidates(source, machine)
    elif machine.device.type == "cuda":
        order = [("tensorrt", "fp16"), ("torch", "fp16"), ("torch", "bf16"), ("onnxruntime", "fp32"),
                 ("torch", "fp32")]
    else:
        order = [("openvino", "int8")] if machine.int8_dot else []
        if machine.native_bf16:
            order += [("openvino", "bf16"), ("torch", "bf16")]
        # ONNX Runtime's fp32 only where OpenVINO is missing: on x86 CPUs OpenVINO's is as fast or faster, and each
        # candidate costs a cold run its export and its gate pass
        order += [("openvino" if "openvino" in machine.runtimes else "onnxruntime", "fp32"), ("torch", "fp32")]
    return [(runtime, precision) for runtime, precision in order
            if runtime in machine.runtimes and get_engine(runtime).offers(machine.device.type, precision)]


def _exported_candidates(source: ModelSource, machine: Machine) -> list[tuple[str, str]]:
    """An exported model runs on the engines that read its file, at the precision it was written at (an fp32 file
    also at bf16 where the CPU computes it natively, or fp16 with TensorRT on CUDA)."""
    written = source.exported_precision
    engines = ("tensorrt", "onnxruntime") if machine.device.type == "cuda" else ("openvino", "onnxruntime")
    readers = [name for name in engines if get_engine(name).opens(source.kind, written)]
    if written != "fp32":
        return [(name, written) for name in readers]
    faster = [("tensorrt", "fp16")] if machine.device.type == "cuda" else \
        [("openvino", "bf16")] if machine.native_bf16 else []
    return [pair for pair in faster if pair[0] in readers] + [(name, "fp32") for name in readers]


@dataclass
class Candidate:
    """One candidate's tuning: frames/s at the job's batch size, its gate figures (None for the reference, or
    when there is no fp32 to compare with) and why it failed to open or failed the gate."""

    runtime: str
    precision: str
    fps: float | None = None
    figures: GateFigures | None = None
    error: str | None = None
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0  # what trying it cost: export, compilation, the gate pass and the timing

    @property
    def passed(self) -> bool:
        """Opened and within the gate."""
        return self.error is None and not self.failures

    def describe(self) -> str:
        """e.g. `openvino int8 31.2 fps, 38.1 dB, steps 0.95 (fp32 0.96)`, or the reason it was left out."""
        if self.error:
            return f"{self.runtime} {self.precision}: {self.error}"
        line = f"{self.runtime} {self.precision} {self.fps:.1f} fps"
        if self.figures is not None:
            line += f", {self.figures.describe()}"
        return line + (f" - refused: {'; '.join(self.failures)}" if self.failures else "")

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {"runtime": self.runtime, "precision": self.precision, "fps": self.fps, "error": self.error,
                "failures": self.failures, "figures": self.figures.to_dict() if self.figures else None,
                "seconds": round(self.seconds, 2)}

    @classmethod
    def from_dict(cls, data: dict) -> "Candidate":
        """The inverse of to_dict."""
        figures = data.get("figures")
        if figures is not None:
            figures = GateFigures(**{**figures, "psnr_db": figures["psnr_db"] if figures["psnr_db"] is not None
                                     else float("inf")})
        return cls(data["runtime"], data["precision"], data["fps"], figures, data["error"], list(data["failures"]),
                   data.get("seconds", 0.0))


@dataclass
class AutoDecision:
    """What auto chose for a model on this machine: the candidates' rows, the chosen (runtime, precision), and
    whether it came from the cache."""

    machine: Machine
    candidates: list[Candidate]
    chosen: tuple[str, str]
    cached: bool = False

    @property
    def how(self) -> str:
        """`from the runtime cache` or `tuned now`."""
        return "from the runtime cache" if self.cached else "tuned now"

    def describe(self) -> str:
        """One line for logs: where it came from, what was chosen, and every candidate's figures."""
        rows = "; ".join(candidate.describe() for candidate in self.candidates)
        return f"auto ({self.how}) on {self.machine.describe()}: chose {' '.join(self.chosen)} of [{rows}]"

    def to_dict(self) -> dict:
        """JSON-ready (the machine is the cache key's part)."""
        return {"chosen": list(self.chosen), "candidates": [candidate.to_dict() for candidate in self.candidates]}


def decision_key(source: ModelSource, machine: Machine, *, batch_size: int) -> dict:
    """The runtime cache's key of auto's decision for source on machine."""
    return {"model": source.identity, "machine": machine.key(), "versions": package_versions(_ENGINE_PACKAGES),
            "batch_size": batch_size, "gate": GATE_VERSION}


def _timing_batch(x: torch.Tensor, cond: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    repeats = -(-batch_size // len(x))
    return x.repeat(repeats, 1, 1, 1)[:batch_size], cond.repeat(repeats, *([1] * (cond.dim() - 1)))[:batch_size]


def _measure(runtime: Runtime, x, cond, batch_size: int) -> tuple[torch.Tensor, float]:
    """The runtime's images of the gate path and its frames/s at batch_size."""
    started = time.perf_counter()
    images = runtime(x, cond)[0]
    elapsed = time.perf_counter() - started
    if elapsed > _SLOW_PASS_SECONDS and batch_size == len(x):
        return images, len(x) / elapsed
    timed_x, timed_cond = _timing_batch(x, cond, batch_size)
    started = time.perf_counter()
    runtime(timed_x, timed_cond)
    return images, batch_size / (time.perf_counter() - started)


def tune(source: ModelSource, *, device, threads: int | None = None, batch_size: int = 16,
         cache: RuntimeCache | None = None, missing=None, every_candidate: bool = True) -> tuple[AutoDecision, Runtime]:
    """Try the candidates on the gate path (see the module doc); the decision and the chosen runtime.

    every_candidate=False stops at the first candidate, in expected-speed order, that passes the gate and runs
    faster than the reference: the rest are expected to be slower, and each would cost a cold run its export,
    compilation and gate pass (`ganbatch tune` measures them all)."""
    device = torch.device(device)
    cache = cache or RuntimeCache()
    machine = detect_machine(device, missing)
    x, cond = gate_inputs(source.info)
    rows: list[Candidate] = []
    opened: dict[tuple[str, str], Runtime] = {}
    reference = None
    preference = candidates(source, machine)
    # the fp32 reference first (torch for checkpoints, else the first fp32 engine; an int8/fp16 export has none),
    # then the others in expected-speed order
    fp32 = [pair for pair in preference if pair[1] == "fp32"]
    first = [("torch", "fp32") if ("torch", "fp32") in fp32 else fp32[0]] if fp32 else []
    for runtime_name, precision in first + [pair for pair in preference if pair not in first]:
        row = Candidate(runtime_name, precision)
        rows.append(row)
        started = time.perf_counter()
        try:
            runtime = build_runtime(source, runtime_name, device=device, precision=precision, threads=threads,
                                    cache=cache)
            images, row.fps = _measure(runtime, x, cond, batch_size)
        except (RuntimeUnavailableError, ValueError, RuntimeError, ImportError, OSError) as error:
            row.error = " ".join(str(error).split())[:200]
            log.debug("auto runtime: %s %s unavailable: %s", runtime_name, precision, row.error)
            continue
        finally:
            row.seconds = time.perf_counter() - started
        if reference is None and precision == "fp32":
            reference, reference_fps = images, row.fps
        elif reference is not None:
            row.figures = gate_figures(images, reference, GATE_FACES)
            row.failures = row.figures.failures(precision)
        opened[(runtime_name, precision)] = runtime
        if not every_candidate and row.figures is not None and row.passed and row.fps > reference_fps:
            break
    if not opened:
        raise RuntimeUnavailableError(f"no runtime can run {source.info.source} here: "
                                      + "; ".join(row.describe() for row in rows))
    passing = [row for row in rows if row.passed]
    if passing:
        best = max(passing, key=lambda row: row.fps)
        chosen = (best.runtime, best.precision)
    else:  # nothing passes: the safest that opened, last in preference order
        chosen = [pair for pair in preference if pair in opened][-1]
    rows.sort(key=lambda row: preference.index((row.runtime, row.precision)))
    return AutoDecision(machine, rows, chosen), opened[chosen]


def choose_runtime(source: ModelSource, *, device, threads: int | None = None, batch_size: int = 16,
                   cache: RuntimeCache | None = None, missing=None, retune: bool = False,
                   tune_now: bool = True) -> Runtime:
    """The runtime auto decides for source on this machine: the cached decision's, else tuned now (under the
    decision's lock, so that the actors of one node tune once; up to the first candidate that passes and beats the
    reference) and stored; retune tunes again regardless, every candidate (`ganbatch tune`). With
    tune_now=False a missing decision is not made: the safe fallback candidate runs instead (a dry run's probe).
    Its `auto` attribute holds the AutoDecision (whose `describe()` has every candidate's figures), and its own
    `describe()` ends with `auto, tuned now` or `auto, from the runtime cache`."""
    device = torch.device(device)
    cache = cache or RuntimeCache()
    machine = detect_machine(device, missing)
    key = decision_key(source, machine, batch_size=batch_size)
    if retune:
        cache.discard_decision(key)
    runtime = _from_cache(source, machine, key, device, threads, cache)
    if runtime is None and not tune_now:
        fallback = candidates(source, machine)[-1]
        runtime = build_runtime(source, fallback[0], device=device, precision=fallback[1], threads=threads,
                                cache=cache)
        runtime.details = "auto, not tuned yet: its safe fallback"
        return runtime
    if runtime is None:
        with cache.lock(f"decision-{key_hash(key)}"):
            runtime = _from_cache(source, machine, key, device, threads, cache)  # another process tuned meanwhile
            if runtime is None:
                decision, runtime = tune(source, device=device, threads=threads, batch_size=batch_size, cache=cache,
                                         missing=missing, every_candidate=retune)
                cache.store_decision(key, decision.to_dict())
                runtime.auto = decision
    runtime.details = f"auto, {runtime.auto.how}"
    log.debug("%s", runtime.auto.describe())
    return runtime


def _from_cache(source: ModelSource, machine: Machine, key: dict, device, threads, cache: RuntimeCache):
    """The cached decision's runtime, or None: no decision, or one whose runtime no longer opens (an engine gone, a
    damaged export), which is discarded with the export it opened, so that tuning builds that again."""
    stored = cache.decision(key)
    if stored is None:
        return None
    try:
        rows = [Candidate.from_dict(row) for row in stored["candidates"]]
        runtime_name, precision = stored["chosen"]
        runtime = build_runtime(source, runtime_name, device=device, precision=precision, threads=threads,
                                cache=cache)
    except (RuntimeUnavailableError, ValueError, RuntimeError, ImportError, OSError, KeyError, TypeError) as error:
        log.info("the cached runtime decision could not be used (%s): tuning again", error)
        cache.discard_decision(key)
        chosen = stored.get("chosen") if isinstance(stored, dict) else None
        if source.kind == "checkpoint" and isinstance(chosen, list) and len(chosen) == 2 and chosen[0] in ENGINES:
            export = get_engine(chosen[0]).export
            if export:
                cache.discard_artifact(artifact_key(source, export, chosen[1]))
        return None
    runtime.auto = AutoDecision(machine, rows, (runtime_name, precision), cached=True)
    return runtime


def describe_table(decision: AutoDecision) -> list[str]:
    """The candidates as table lines (for `ganbatch tune`): engine, precision, frames/s, PSNR, monotone steps (its
    own and fp32's), the seconds trying it took and the verdict."""
    lines = [f"{'runtime':12s} {'precision':9s} {'frames/s':>9s} {'PSNR dB':>8s} {'steps':>6s} {'fp32 steps':>10s} "
             f"{'tried in':>8s}  verdict"]
    for row in decision.candidates:
        figures = row.figures
        psnr = "" if figures is None else ("inf" if figures.psnr_db == float("inf") else f"{figures.psnr_db:.1f}")
        steps = "" if figures is None or figures.smoothness is None else f"{figures.smoothness:.3f}"
        reference = "" if figures is None or figures.reference_smoothness is None else \
            f"{figures.reference_smoothness:.3f}"
        fps = "" if row.fps is None else f"{row.fps:.1f}"
        if row.error:
            verdict = f"unavailable: {row.error[:80]}"
        elif (row.runtime, row.precision) == decision.chosen:
            verdict = "chosen"
        elif row.failures:
            verdict = "refused: " + "; ".join(row.failures)
        else:
            verdict = "passes" if figures is not None else "reference"
        lines.append(f"{row.runtime:12s} {row.precision:9s} {fps:>9s} {psnr:>8s} {steps:>6s} {reference:>10s} "
                     f"{row.seconds:7.1f}s  {verdict}")
    return lines

