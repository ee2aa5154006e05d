"""This machine as `auto` sees it: the device, torch's CPU capability, the CPU flags that decide precisions (native
bf16, int8 dot products) and the installed engines; and the part of it that keys the runtime cache."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ganbatch.runtimes.registry import installed_engines

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
INT8_DOT_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")
# Flags that change which engine or precision is fastest (and so a cached decision's validity).
DECIDING_FLAGS = ("avx2", "avx512f", "avx512_fp16", "amx_tile", *NATIVE_BF16_FLAGS, *INT8_DOT_FLAGS)


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


@dataclass(frozen=True)
class Machine:
    """What auto decides from: the device (and the GPU's name on CUDA), torch's CPU capability, the CPU flags and
    the installed engines."""

    device: torch.device
    cpu_capability: str
    flags: frozenset[str]
    runtimes: tuple[str, ...]
    gpu_name: str = ""

    @property
    def native_bf16(self) -> bool:
        """The CPU computes bf16 natively (AVX512_BF16 or AMX)."""
        return any(flag in self.flags for flag in NATIVE_BF16_FLAGS)

    @property
    def int8_dot(self) -> bool:
        """The CPU has int8 dot-product instructions (VNNI or AMX), which make int8 convolutions fast."""
        return any(flag in self.flags for flag in INT8_DOT_FLAGS)

    def key(self) -> dict:
        """The part of the machine a cached decision depends on (an engine installed or ruled out since: tuned
        again)."""
        if self.device.type == "cuda":
            return {"device": "cuda", "gpu": self.gpu_name, "engines": list(self.runtimes)}
        return {"device": "cpu", "capability": self.cpu_capability,
                "flags": sorted(flag for flag in DECIDING_FLAGS if flag in self.flags), "engines": list(self.runtimes)}

    def describe(self) -> str:
        """e.g. "cpu AVX512 (avx512_bf16 amx_bf16 amx_int8 avx512_vnni); runtimes torch, onnxruntime"."""
        if self.device.type == "cuda":
            return f"{self.device} {self.gpu_name}; runtimes {', '.join(self.runtimes)}"
        shown = [flag for flag in (*NATIVE_BF16_FLAGS, *INT8_DOT_FLAGS) if flag in self.flags]
        return f"cpu {self.cpu_capability} ({' '.join(shown) or 'no bf16/int8 flags'}); " \
               f"runtimes {', '.join(self.runtimes)}"


def detect_machine(device, missing=None) -> Machine:
    """This machine as auto sees it (see Machine); `missing` rules engines out (GANBATCH_RUNTIMES_MISSING by
    default)."""
    device = torch.device(device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    return Machine(device, torch.backends.cpu.get_cpu_capability(), cpu_flags(), installed_engines(missing), gpu)
