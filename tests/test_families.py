"""Model families: one registry, the objective as a union discriminated by family, and each family's hooks."""
import typing

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from pydantic import ValidationError

from ganbatch.cli import main
from ganbatch.families import FAMILIES, Batch, Networks, get_family
from ganbatch.jobs.objectives import OBJECTIVES, GANimationObjective, ObjectiveSpec
from ganbatch.jobs.train import TrainJob
from ganbatch.synth import write_dataset
from ganbatch.train.batches import BatchMaker
from ganbatch.train.data import find_training_data

TINY = dict(size=64, conv_dim=4, res_blocks=1, d_conv_dim=4)


def _job(family, **fields):
    return TrainJob(family=family, data="d", out="o", name="n", **fields)


def _foreign_fields(family: str) -> dict[str, str]:
    """{field: owning family} of the objective fields other families have and `family` has not."""
    own = OBJECTIVES[family].model_fields
    return {name: other for other, objective in OBJECTIVES.items() if other != family
            for name in objective.model_fields if name not in own}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    write_dataset(root, 3, 3, size=64, seed=2, contact_sheet=False)
    return root


# the registry

def test_the_registry_is_the_one_list_of_families():
    assert sorted(FAMILIES) == ["ganimation", "gannotation"]
    assert typing.get_args(TrainJob.model_fields["family"].annotation) == tuple(FAMILIES)
    assert set(typing.get_args(TrainJob.model_fields["objective"].annotation)) == set(OBJECTIVES.values())
    assert list(OBJECTIVES) == list(FAMILIES)  # one objective schema per family
    for name, family in FAMILIES.items():
        assert family.name == name and get_family(name) is family
        assert typing.get_args(OBJECTIVES[name].model_fields["family"].annotation) == (name,)
        assert issubclass(OBJECTIVES[name], ObjectiveSpec)
    with pytest.raises(ValueError, match="unknown model family 'stargan'; known: ganimation, gannotation"):
        get_family("stargan")


def test_families_load_without_torch_and_their_constants_match_the_targets_modules():
    import subprocess
    import sys

    code = "import sys, ganbatch.families, ganbatch.jobs.train; print('torch' in sys.modules, 'scipy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "False"], done.stderr
    from ganbatch.models import GANimationGenerator, GANnotationDiscriminator
    from ganbatch.targets.aus import NUM_AUS
    from ganbatch.targets.landmarks import NUM_GANNOTATION

    assert get_family("ganimation").target_shape == (NUM_AUS,)
    assert get_family("gannotation").target_shape == (NUM_GANNOTATION, 2)
    assert get_family("ganimation").generator_cls is GANimationGenerator
    assert get_family("gannotation").discriminator_cls is GANnotationDiscriminator


# the objective union

def test_each_family_has_fields_of_its_own():
    assert _foreign_fields("gannotation") == {"lambda_au": "ganimation", "au_noise": "ganimation",
                                              "lambda_colour": "ganimation", "lambda_mask_changed": "ganimation",
                                              "paired_fraction": "ganimation"}
    assert _foreign_fields("ganimation") == {"lambda_triple": "gannotation"}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_another_familys_objective_field_is_a_one_line_error_naming_field_and_families(family):
    for name, owner in _foreign_fields(family).items():
        with pytest.raises(ValidationError) as raised:
            _job(family, objective={name: 0.5})
        errors = raised.value.errors()
        assert len(errors) == 1 and errors[0]["loc"] == ("objective",)
        assert errors[0]["msg"] == f"Value error, {name}: {owner} setting, not used by a {family} job"


def test_several_foreign_fields_are_named_in_one_line():
    with pytest.raises(ValidationError, match="lambda_au, au_noise: ganimation settings, not used by a "
                                              "gannotation job"):
        _job("gannotation", objective={"lambda_au": 1, "au_noise": 0.2, "lambda_triple": 3})


def test_a_manifest_with_another_familys_field_fails_validation_in_one_line(tmp_path):
    manifest = tmp_path / "job.yaml"
    manifest.write_text("kind: train\nfamily: gannotation\ndata: d\nout: o\nname: n\n"
                        "objective:\n  lambda_cycle: 5\n  paired_fraction: 0.3\n")
    result = CliRunner().invoke(main, ["validate", str(manifest)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    problems = [line for line in result.output.splitlines() if "paired_fraction" in line]
    assert problems == [f"  {manifest}:6: objective: paired_fraction: ganimation setting, not used by a "
                        "gannotation job"]


@pytest.mark.parametrize("objective, named", [
    ({"lambda_colour": 30}, "lambda_colour needs"),
    ({"lambda_colour": 1, "lambda_mask_changed": 2, "lambda_pixel": 0}, "lambda_colour and lambda_mask_changed need"),
    ({"lambda_mask_changed": 2, "lambda_pixel": 300, "paired_fraction": 0}, "lambda_mask_changed needs"),
])
def test_ganimation_region_terms_without_paired_targets_are_a_one_line_error(objective, named):
    with pytest.raises(ValidationError) as raised:
        _job("ganimation", objective=objective)
    errors = raised.value.errors()
    assert len(errors) == 1
    assert errors[0]["msg"] == f"Value error, {named} paired targets: set lambda_pixel > 0 and paired_fraction > 0"
    assert _job("ganimation", objective={**objective, "lambda_pixel": 300, "paired_fraction": 0.5})


def test_the_job_family_picks_the_objective_and_dumps_round_trip():
    for family in FAMILIES.values():
        job = _job(family.name, objective={"lambda_tv": 0.5})
        assert type(job.objective) is OBJECTIVES[family.name] and job.objective.family == family.name
        dumped = job.model_dump(mode="json")
        assert "family" not in dumped["objective"]  # set from the job's family, not a setting of its own
        assert TrainJob.model_validate(dumped) == job


def test_an_objective_of_another_family_is_refused():
    with pytest.raises(ValidationError, match="a ganimation objective on a gannotation job"):
        _job("gannotation", objective=GANimationObjective())


def test_a_wrong_family_is_the_one_error():
    with pytest.raises(ValidationError) as raised:
        _job("stargan", objective={"lambda_au": 1})
    assert [error["loc"] for error in raised.value.errors()] == [("family",)]


def test_saved_jobs_of_runs_before_the_union_drop_other_families_settings():
    legacy = _job("gannotation").model_dump(mode="json")
    legacy["objective"].update(lambda_au=160.0, au_noise=0.1, paired_fraction=0.5)  # the old schema's dump
    import json

    assert TrainJob.from_saved_json(json.dumps(legacy)) == _job("gannotation")
    legacy["objective"]["lambda_tripel"] = 1  # a key no family has stays an error
    with pytest.raises(ValidationError, match="lambda_tripel"):
        TrainJob.from_saved_json(json.dumps(legacy))


# each family's hooks

def test_published_objectives_and_optimizers():
    ganimation, gannotation = _job("ganimation"), _job("gannotation")
    assert ganimation.resolved_objective().critic_steps == 5
    assert _job("ganimation", objective={"adversarial": "hinge"}).resolved_objective().critic_steps == 5
    assert gannotation.resolved_objective().critic_steps == 1
    assert _job("gannotation", objective={"adversarial": "wgan-gp"}).resolved_objective().critic_steps == 4
    assert _job("gannotation", objective={"critic_steps": 3}).resolved_objective().critic_steps == 3
    assert (ganimation.resolved_optimizer().beta2, gannotation.resolved_optimizer().beta2) == (0.999, 0.9)
    assert (ganimation.resolved_optimizer().grad_clip, gannotation.resolved_optimizer().grad_clip) == (0.0, 1.0)
    assert _job("gannotation", optimizer={"beta2": 0.5}).resolved_optimizer().beta2 == 0.5
    # paired targets only with a pixel term, and only GANimation samples them
    assert ganimation.resolved_objective().sampling() == {"au_noise": 0.1, "paired_fraction": 0.0}
    paired = _job("ganimation", objective={"lambda_pixel": 2.0}).resolved_objective()
    assert paired.sampling()["paired_fraction"] == 0.5 and "paired fraction 0.5" in paired.plan_suffix()
    assert gannotation.resolved_objective().sampling() == {} and gannotation.resolved_objective().plan_suffix() == ""
    assert any("perceptual" in note for note in get_family("gannotation").plan_notes)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_conventions_map_both_ways(family):
    family = get_family(family)
    images = torch.tensor([-1.0, 1.0]).view(2, 1, 1, 1).expand(2, 3, 2, 2)
    assert torch.equal(family.to_generator_input(images)[:, 0, 0, 0], torch.tensor([family.input_low, 1.0]))
    faces = np.stack([np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 255, np.uint8)])
    assert torch.allclose(family.face_to_input(faces), family.to_generator_input(images))
    assert np.array_equal(family.to_pixels(images)[:, 0, 0], [[0, 0, 0], [255, 255, 255]])


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_loss_terms_batches_previews_and_eval_targets(family, synthetic):
    family = get_family(family)
    job = _job(family.name, network=TINY, objective={"lambda_pixel": 1.0})
    objective = job.resolved_objective()
    data = find_training_data(str(synthetic), family.name)
    maker = BatchMaker(data, synthetic, family, 64, seed=0, global_batch=2, critic_steps=1, **objective.sampling())
    batch = maker.batch(0, 0)
    filled = {name for name, value in vars(batch).items() if value is not None}
    expected = {"ganimation": {"real", "alpha", "cond_real", "cond_target", "target", "has_pair"},
                "gannotation": {"real", "alpha", "heat_real", "heat_target", "heat_third", "target", "has_pair"}}
    assert filled == expected[family.name]
    torch.manual_seed(0)
    generator = family.generator_cls(conv_dim=4, repeat_num=1, options=family.training_options)
    critic = family.discriminator_cls(image_size=64, conv_dim=4, repeat_num=5)
    nets = Networks(family, generator, critic)
    d_total, d_terms = family.critic_losses(nets, batch, objective)
    g_total, g_terms = family.generator_losses(nets, batch, objective)
    assert set(d_terms) | set(g_terms) <= set(family.loss_terms)
    assert all(hasattr(objective, f"lambda_{term}") for term in family.loss_terms)  # each term has its weight
    assert torch.isfinite(d_total) and torch.isfinite(g_total)
    targets = family.preview_targets(maker, 6)
    assert targets.shape == (6, *family.target_shape)
    assert family.column_labels(6)[0] == "input" and len(family.column_labels(6)) == 7
    assert family.targets_to_cond(targets, 64).shape[0] == 6
    aus = np.zeros((3, 17), np.float32)
    conditions = family.eval_targets(aus, lambda _: np.zeros((68, 2), np.float32))
    assert conditions.shape == (3, *family.target_shape)


def test_ganimation_previews_name_their_expressions():
    labels = get_family("ganimation").column_labels(6)
    assert labels[1:] == ["happy", "sad", "surprise", "anger", "disgust", "blink"]
    assert get_family("gannotation").column_labels(2) == ["input", "target 1", "target 2"]


def test_a_batch_moves_every_tensor():
    batch = Batch(real=torch.zeros(1, 3, 2, 2), alpha=torch.zeros(1), has_pair=torch.ones(1))
    moved = batch.to("meta")
    assert moved.real.device.type == "meta" and moved.has_pair.device.type == "meta" and moved.cond_real is None
