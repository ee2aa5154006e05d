"""The model family registry: one module per family (`ganimation`, `gannotation`), each owning everything about it
(see `base`); the renderer, the trainer, the job schema and the evaluator go through `get_family(name)`.

Adding a family: a module with a `ModelFamily` subclass and its instance, and one line here; its objective schema
goes in `ganbatch.jobs.objectives`.
"""
from ganbatch.families.base import Batch, ModelFamily, Networks
from ganbatch.families.ganimation import GANIMATION
from ganbatch.families.gannotation import GANNOTATION

FAMILIES: dict[str, ModelFamily] = {family.name: family for family in (GANIMATION, GANNOTATION)}


def get_family(name: str) -> ModelFamily:
    """The registered family called name; ValueError listing the known names otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}") from None


__all__ = ["FAMILIES", "Batch", "ModelFamily", "Networks", "get_family"]
