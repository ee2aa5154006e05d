"""ganbatch: face photos to expression videos with GAN face-animation models, on a laptop or a Ray cluster.

The Python API (`ganbatch.api`): `load_model(uri).animate(image, target)`, `animate(inputs, out=..., targets=...)`
and `run_job(path_or_dict)`; loaded on first use, so that `import ganbatch` (and the CLI's --help) stays light.
"""
import importlib

__version__ = "0.1.0"
__all__ = ["Model", "animate", "load_model", "run_job"]


def __getattr__(name: str):
    # by name, through importlib: the modules that read __version__ from here do not depend on the API
    if name == "animate":  # the package, which is callable: ganbatch.animate(...) is api.animate
        return importlib.import_module("ganbatch.animate")
    if name in __all__:
        return getattr(importlib.import_module("ganbatch.api"), name)
    raise AttributeError(f"module 'ganbatch' has no attribute {name!r}")
