"""Each value list is written once (ganbatch.choices) and the schema is built from it; where a lower module keeps a
registry of its own (detectors, runtime precisions), it names the same values; the runtime names are the engine
registry's."""
import typing

from ganbatch import choices
from ganbatch.jobs import AnimateJob, ExportJob, SynthJob, TrainJob
from ganbatch.runtimes import registry


def _choices(model, *path):
    field = model.model_fields[path[0]]
    for name in path[1:]:
        field = field.annotation.model_fields[name]
    annotation = field.annotation
    while typing.get_origin(annotation) in (typing.Union, list):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return typing.get_args(annotation)


def test_the_schema_offers_the_lists():
    assert _choices(AnimateJob, "output", "format") == choices.VIDEO_FORMATS
    assert _choices(AnimateJob, "output", "layout") == choices.OUTPUT_LAYOUTS
    assert _choices(AnimateJob, "crop", "backend") == choices.DETECTORS
    assert _choices(AnimateJob, "execution", "runtime") == ("auto", *registry.ENGINES)
    assert _choices(AnimateJob, "execution", "precision") == choices.PRECISIONS
    assert _choices(ExportJob, "format") == choices.EXPORT_FORMATS
    assert _choices(ExportJob, "precision") == choices.EXPORT_PRECISIONS
    assert _choices(SynthJob, "layouts") == choices.DATASET_LAYOUTS
    assert _choices(TrainJob, "execution", "precision") == ("auto", *choices.PRECISIONS)


def test_the_code_accepts_the_same_values():
    from ganbatch.faces.detect import BACKENDS
    from ganbatch.models import export
    from ganbatch.render import PRECISIONS
    from ganbatch.runtimes import base
    from ganbatch.targets.schedule import EASINGS, EASING_NAMES

    assert ("auto", *BACKENDS) == choices.DETECTORS
    assert PRECISIONS == choices.PRECISIONS and set(choices.PRECISIONS) < set(base.PRECISIONS)
    assert export.EXPORT_PRECISIONS == choices.EXPORT_PRECISIONS
    assert set(export.FORMATS) < set(choices.EXPORT_FORMATS)
    assert set(EASING_NAMES) == {*EASINGS, "cubic"}
