"""The model family registry: one module per family (`ganimation`, `gannotation`), each owning everything about it
(see `base`); the renderer, the trainer, the job schema and the evaluator go through `get_family(name)`.

Adding a family: a module here whose `FAMILY` is an instance of its `ModelFamily` subclass (the registry finds every
module of this package but `base`, in name order); its objective schema goes in `ganbatch.jobs.objectives`.
"""
import importlib
import pkgutil

from ganbatch.families.base import Batch, ModelFamily, Networks


def _registered() -> dict[str, ModelFamily]:
    modules = sorted(module.name for module in pkgutil.iter_modules(__path__) if module.name != "base")
    families = (importlib.import_module(f"{__name__}.{module}").FAMILY for module in modules)
    return {family.name: family for family in families}


FAMILIES: dict[str, ModelFamily] = _registered()


def get_family(name: str) -> ModelFamily:
    """The registered family called name; ValueError listing the known names otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}") from None


__all__ = ["FAMILIES", "Batch", "ModelFamily", "Networks", "get_family"]
