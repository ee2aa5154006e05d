"""The engines a generator can run on, one module each; adding a runtime is one module and one line here.

Each engine module defines `ENGINE` (an `Engine`: its name, the package it needs, the model files it reads, the
file a checkpoint is exported to for it, the devices and precisions it offers) and its `Runtime` subclass. The
modules import their engine's package only when a runtime is built; this module imports none of them (the job
schema reads RUNTIMES without loading torch).
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

# One line per engine: its name and module.
ENGINES = {
    "torch": "ganbatch.runtimes.torch_engine",
    "onnxruntime": "ganbatch.runtimes.onnxruntime_engine",
    "openvino": "ganbatch.runtimes.openvino_engine",
    "tensorrt": "ganbatch.runtimes.tensorrt_engine",
}
# What a job may name: an engine, or auto (the fastest here that passes the quality gate; ganbatch.runtimes.auto).
RUNTIMES = ("auto", *ENGINES)


@dataclass(frozen=True)
class Engine:
    """One engine: `reads` the model kinds it opens ("checkpoint", "onnx", "openvino"); `export` the format a
    checkpoint is exported to for it (None: it runs the checkpoint itself); `precisions` per device type; `package`
    the import that must be installed (None: always there); `runtime_class` the Runtime subclass's name;
    `keeps_compiled`: its Runtime takes `compiled_cache`, a folder where it keeps what it compiles; `misreads`: the
    "kind:precision" files of a kind it reads that it runs wrongly (left to the engines that read them right)."""

    name: str
    runtime_class: str
    reads: tuple[str, ...]
    export: str | None
    precisions: dict[str, tuple[str, ...]]
    package: str | None = None
    keeps_compiled: bool = False
    misreads: tuple[str, ...] = ()

    def installed(self, missing=None) -> bool:
        """Whether its package is importable here and not ruled out by `missing` (default: the packages that
        GANBATCH_RUNTIMES_MISSING names; see `ganbatch.models.export.missing_packages`)."""
        if missing is None:
            from ganbatch.models.export import missing_packages

            missing = missing_packages()
        if self.package is None:
            return True
        return self.package not in missing and importlib.util.find_spec(self.package) is not None

    def opens(self, kind: str, precision: str | None = None) -> bool:
        """Whether it runs a model file of this kind ("checkpoint", "onnx", "openvino") written at precision."""
        return kind in self.reads and f"{kind}:{precision}" not in self.misreads

    def offers(self, device_type: str, precision: str) -> bool:
        """Whether it runs precision on this device type."""
        return precision in self.precisions.get(device_type, ())


def engine(name: str) -> Engine:
    """The registered engine called name; ValueError for an unknown one."""
    if name not in ENGINES:
        raise ValueError(f"runtime must be one of {', '.join(('auto', *ENGINES))}, got {name!r}")
    return importlib.import_module(ENGINES[name]).ENGINE


def runtime_class(name: str):
    """The Runtime subclass of the engine called name."""
    return getattr(importlib.import_module(ENGINES[name]), engine(name).runtime_class)


def installed_engines(missing=None) -> tuple[str, ...]:
    """The engines whose package is importable here, minus `missing`, in registration order."""
    return tuple(name for name in ENGINES if engine(name).installed(missing))
