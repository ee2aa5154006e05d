"""Which autocast precision a training run uses on this machine: bf16 only where the hardware computes it natively.

`auto` (the default) resolves per machine, never by a hard-coded choice:
- CPU: bf16 when torch's CPU kernels run AVX-512 (`torch.backends.cpu.get_cpu_capability()` is AVX512 or better)
  and the CPU flags (/proc/cpuinfo) hold `avx512_bf16` or `amx_bf16`; then oneDNN's convolutions and matrix
  products use the bf16 dot-product instructions (2-5x fewer cycles than fp32 at the critic's widths). On AVX2-only
  CPUs bf16 is emulated and slower than fp32, so `auto` stays fp32.
- CUDA: bf16 when the GPU supports it (`torch.cuda.is_bf16_supported()`), else fp32.
- anything else: fp32.
An explicit fp32, bf16 or fp16 is used as asked (the trainer refuses fp16 off CUDA).
"""
import functools
from pathlib import Path

import torch

AUTO = "auto"
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_CPUINFO = Path("/proc/cpuinfo")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The feature flags of this machine's CPU (the first `flags` line of /proc/cpuinfo; empty where there is none)."""
    try:
        text = _CPUINFO.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def cpu_has_native_bf16(capability: str | None = None, flags: frozenset[str] | None = None) -> bool:
    """Whether torch on this CPU computes bf16 natively: an AVX-512 (or AMX) kernel capability and a bf16 flag.

    capability and flags default to this machine's (`torch.backends.cpu.get_cpu_capability()`, `cpu_flags()`).
    """
    capability = torch.backends.cpu.get_cpu_capability() if capability is None else capability
    flags = cpu_flags() if flags is None else flags
    return capability.upper().startswith(("AVX512", "AMX")) and any(flag in flags for flag in NATIVE_BF16_FLAGS)


def resolve_precision(precision: str, device) -> str:
    """The precision a run uses on device: `precision` itself, or for `auto` the rule of the module doc."""
    if precision != AUTO:
        return precision
    device = torch.device(device)
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "fp32"


def describe_machine() -> str:
    """One line for logs and benchmarks: torch's CPU capability and the CPU's bf16/AMX flags."""
    flags = sorted(flag for flag in cpu_flags() if flag in NATIVE_BF16_FLAGS + ("amx_tile", "avx512f", "avx2"))
    return f"torch CPU capability {torch.backends.cpu.get_cpu_capability()}; CPU flags: {' '.join(flags) or 'none'}"
