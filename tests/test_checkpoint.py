"""Checkpoint loading: ganbatch's format and the published layouts, each rebuilt here under its original names.

The foreign key lists below are written from the original implementations' module structure (registration order),
independently of the loader: each generator state_dict is renamed key by key and saved the way its code saves it.
"""
import argparse
import json
from collections import OrderedDict

import pytest
import torch
from torch import nn

from ganbatch.models import (
    CheckpointFormatError,
    GANimationGenerator,
    GANnotationGenerator,
    TrunkOptions,
    UntrustedCheckpointError,
    load_generator,
    save_generator,
)

SIZE = 16
REPLICATE_OPTIONS = TrunkOptions(conv_bias=True, norm_affine=False, block_conv_bias=True, block_norm_affine=False)


def norm_keys(prefix):
    return [f"{prefix}.weight", f"{prefix}.bias"]


def ganimation_official_keys(blocks, trunk="main", block="main"):
    """albertpumarola/GANimation Generator: one Sequential `main` (3 conv/IN/ReLU triples, ResidualBlocks whose
    own Sequential `main` is conv/IN/ReLU/conv/IN, 2 convT/IN/ReLU triples), heads img_reg, attetion_reg."""
    keys = []
    for i in (0, 3, 6):
        keys += [f"{trunk}.{i}.weight", *norm_keys(f"{trunk}.{i + 1}")]
    for k in range(blocks):
        n = 9 + k
        keys += [f"{trunk}.{n}.{block}.0.weight", *norm_keys(f"{trunk}.{n}.{block}.1"),
                 f"{trunk}.{n}.{block}.3.weight", *norm_keys(f"{trunk}.{n}.{block}.4")]
    for i in (9 + blocks, 12 + blocks):
        keys += [f"{trunk}.{i}.weight", *norm_keys(f"{trunk}.{i + 1}")]
    return keys + ["img_reg.0.weight", "attetion_reg.0.weight"]


def ganimation_replicate_keys(blocks):
    """donydchen SplitGenerator: Sequential `model` with biased convs and non-affine IN, ResnetBlock.conv_block
    (zero padding: conv/IN/ReLU/conv/IN), heads color_top and au_top without bias."""
    keys = []
    for i in (0, 3, 6):
        keys += [f"model.{i}.weight", f"model.{i}.bias"]
    for k in range(blocks):
        n = 9 + k
        keys += [f"model.{n}.conv_block.0.weight", f"model.{n}.conv_block.0.bias",
                 f"model.{n}.conv_block.3.weight", f"model.{n}.conv_block.3.bias"]
    for i in (9 + blocks, 12 + blocks):
        keys += [f"model.{i}.weight", f"model.{i}.bias"]
    return keys + ["color_top.0.weight", "au_top.0.weight"]


def vipermu_keys(blocks):
    keys = ganimation_official_keys(blocks)
    return keys[:-2] + ["im_reg.0.weight", "im_att.0.weight"]


def gannotation_keys(blocks):
    """GANnotation demo Generator: down_conv, bottleneck.K.conv1/conv2 (biased, IN not affine), feature_layer,
    colour_layer, mask_layer."""
    keys = []
    for i in (0, 3, 6):
        keys += [f"down_conv.{i}.weight", *norm_keys(f"down_conv.{i + 1}")]
    for k in range(blocks):
        keys += [f"bottleneck.{k}.conv1.weight", f"bottleneck.{k}.conv1.bias",
                 f"bottleneck.{k}.conv2.weight", f"bottleneck.{k}.conv2.bias"]
    for i in (0, 3):
        keys += [f"feature_layer.{i}.weight", *norm_keys(f"feature_layer.{i + 1}")]
    return keys + ["colour_layer.0.weight", "mask_layer.0.weight"]


def make_generator(cls, seed=0, **kwargs):
    torch.manual_seed(seed)
    generator = cls(conv_dim=8, **kwargs)
    for layer in generator.modules():
        if isinstance(layer, nn.InstanceNorm2d) and layer.affine:
            nn.init.uniform_(layer.weight, 0.5, 1.5)
            nn.init.uniform_(layer.bias, -0.5, 0.5)
    return generator.eval()


def renamed(generator, foreign_keys):
    """The generator's tensors under the original implementation's names (same registration order)."""
    tensors = list(generator.state_dict().values())
    assert len(tensors) == len(foreign_keys)
    return OrderedDict(zip(foreign_keys, tensors))


def add_running_stats(state, norm_prefixes, batches_tracked=False):
    """Running statistics as PyTorch 0.3 (or track_running_stats=True) saved them; garbage values on purpose."""
    for prefix in norm_prefixes:
        channels = state[f"{prefix}.weight"].shape[0]
        state[f"{prefix}.running_mean"] = torch.full((channels,), 3.0)
        state[f"{prefix}.running_var"] = torch.full((channels,), 7.0)
        if batches_tracked:
            state[f"{prefix}.num_batches_tracked"] = torch.tensor(12)
    return state


def assert_same_outputs(loaded, source, cond):
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        for got, expected in zip(loaded(x, cond), source(x, cond)):
            torch.testing.assert_close(got, expected)


def test_ganimation_official_with_dataparallel_prefix_and_old_running_stats(tmp_path):
    source = make_generator(GANimationGenerator, repeat_num=2)
    state = renamed(source, ganimation_official_keys(2))
    norms = [key[:-len(".bias")] for key in state if key.endswith(".bias")]
    state = OrderedDict((f"module.{key}", value) for key, value in add_running_stats(state, norms).items())
    path = tmp_path / "net_epoch_30_id_G.pth"
    torch.save(state, path)

    generator, info = load_generator(path)
    assert (info.family, info.variant, info.source) == ("ganimation", "ganimation_official", str(path))
    assert info.hparams == {"conv_dim": 8, "repeat_num": 2, "cond_channels": 17, "image_size": None}
    assert not generator.training
    assert_same_outputs(generator, source, torch.rand(2, 17))


def test_ganimation_replicate_layout(tmp_path):
    source = make_generator(GANimationGenerator, repeat_num=2, cond_channels=7, options=REPLICATE_OPTIONS)
    path = tmp_path / "30_net_gen.pth"
    torch.save(renamed(source, ganimation_replicate_keys(2)), path)

    generator, info = load_generator(path)
    assert (info.family, info.variant) == ("ganimation", "ganimation_replicate")
    assert info.hparams["cond_channels"] == 7 and info.hparams["repeat_num"] == 2
    assert generator.options == REPLICATE_OPTIONS
    assert_same_outputs(generator, source, torch.rand(2, 7))


def test_vipermu_layout_with_debug_aliases_and_tracked_stats(tmp_path):
    source = make_generator(GANimationGenerator, repeat_num=1)
    state = renamed(source, vipermu_keys(1))
    norms = [key[:-len(".bias")] for key in state if key.endswith(".bias")]
    add_running_stats(state, norms, batches_tracked=True)
    main_keys = [key for key in state if key.startswith("main.")]
    # debug1..4 are Sequentials over growing prefixes of the same layers: main.0-2, main.0-8, main.0-9, all of main.
    for alias, last_layer in (("debug1", 2), ("debug2", 8), ("debug3", 9), ("debug4", 99)):
        for key in main_keys:
            if int(key.split(".")[1]) <= last_layer:
                state[alias + key[len("main"):]] = state[key]
    path = tmp_path / "200000-10-G.ckpt"
    torch.save(state, path)

    generator, info = load_generator(path)
    assert (info.family, info.variant) == ("ganimation", "ganimation_vipermu")
    assert info.hparams["repeat_num"] == 1
    assert_same_outputs(generator, source, torch.rand(2, 17))


def test_gannotation_demo_layout(tmp_path):
    source = make_generator(GANnotationGenerator, repeat_num=2)
    state = {f"module.{key}": value for key, value in renamed(source, gannotation_keys(2)).items()}
    path = tmp_path / "myGEN.pth"
    torch.save({"state_dict": state}, path)

    generator, info = load_generator(path)
    assert (info.family, info.variant) == ("gannotation", "gannotation_demo")
    assert info.hparams == {"conv_dim": 8, "repeat_num": 2, "cond_channels": 66, "image_size": None}
    assert_same_outputs(generator, source, torch.rand(2, 66, SIZE, SIZE))


def test_unknown_layout_names_missing_unexpected_and_closest(tmp_path):
    state = renamed(make_generator(GANimationGenerator, repeat_num=1), ganimation_official_keys(1))
    state["image_head.0.weight"] = state.pop("img_reg.0.weight")
    del state["attetion_reg.0.weight"]
    path = tmp_path / "model.pt"
    torch.save(state, path)

    with pytest.raises(CheckpointFormatError) as caught:
        load_generator(path)
    error = caught.value
    assert error.closest_layout == "ganimation_official"
    assert error.missing == ("attetion_reg.0.weight", "img_reg.0.weight")
    assert error.unexpected == ("image_head.0.weight",)
    for text in (str(path), "ganimation_official", "attetion_reg.0.weight", "image_head.0.weight"):
        assert text in str(error)


def test_mismatched_shapes_are_reported(tmp_path):
    state = renamed(make_generator(GANimationGenerator, repeat_num=1), ganimation_official_keys(1))
    state["img_reg.0.weight"] = torch.zeros(3, 5, 7, 7)
    torch.save(state, tmp_path / "g.pth")
    with pytest.raises(CheckpointFormatError, match="shapes"):
        load_generator(tmp_path / "g.pth")


def test_non_state_dict_content_is_rejected(tmp_path):
    torch.save({"G": {"main.0.weight": torch.zeros(1)}, "epoch": 3}, tmp_path / "both.pth")
    with pytest.raises(CheckpointFormatError, match="state_dict"):
        load_generator(tmp_path / "both.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointFormatError, match="not a readable"):
        load_generator(tmp_path / "junk.pth")


class RunsCodeWhenUnpickled:
    def __reduce__(self):
        return print, ("code from the checkpoint ran",)


def test_pickle_needing_code_is_refused_unless_trusted(tmp_path, capsys):
    source = make_generator(GANnotationGenerator, repeat_num=1)
    state = renamed(source, gannotation_keys(1))
    path = tmp_path / "myGEN.pth"
    torch.save({"state_dict": state, "opt": argparse.Namespace(lr=1e-4)}, path)

    with pytest.raises(UntrustedCheckpointError, match="trust_pickle") as caught:
        load_generator(path)
    assert "argparse.Namespace" in str(caught.value)
    generator, info = load_generator(path, trust_pickle=True)
    assert info.variant == "gannotation_demo"
    assert_same_outputs(generator, source, torch.rand(2, 66, SIZE, SIZE))

    torch.save({"state_dict": state, "payload": RunsCodeWhenUnpickled()}, tmp_path / "evil.pth")
    with pytest.raises(UntrustedCheckpointError):
        load_generator(tmp_path / "evil.pth")
    assert "code from the checkpoint ran" not in capsys.readouterr().out


@pytest.mark.parametrize("cls,options,cond_shape", [
    (GANimationGenerator, REPLICATE_OPTIONS, (2, 17)),
    (GANnotationGenerator, None, (2, 66, SIZE, SIZE)),
])
def test_own_format_round_trip(tmp_path, cls, options, cond_shape):
    source = make_generator(cls, repeat_num=1, options=options)
    path = tmp_path / "net_epoch_1_id_G.pth"  # the name does not matter, only the content does
    provenance = {"dataset": "s3://bucket/faces", "epochs": 3}
    save_generator(source, path, {"image_size": SIZE, "provenance": provenance})
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind

    raw = torch.load(path, weights_only=True)
    assert (raw["format"], raw["version"]) == ("ganbatch", 1)
    config = json.loads(raw["config"])
    assert config["family"] == source.family and config["provenance"] == provenance

    generator, info = load_generator(path)
    assert (info.family, info.variant, info.image_size) == (source.family, "ganbatch", SIZE)
    assert info.hparams == {"conv_dim": 8, "repeat_num": 1, "cond_channels": cond_shape[1], "image_size": SIZE}
    assert info.config["provenance"] == provenance
    assert generator.options == source.options
    assert_same_outputs(generator, source, torch.rand(cond_shape))


def test_own_format_condition_layout_is_recorded(tmp_path):
    save_generator(make_generator(GANimationGenerator, repeat_num=1), tmp_path / "model.pt")
    _, info = load_generator(tmp_path / "model.pt")
    assert info.config["condition"]["kind"] == "aus"
    assert info.config["condition"]["au_names"][0] == "AU1" and len(info.config["condition"]["au_names"]) == 17
    assert info.image_size is None


def test_own_format_with_unsupported_version_or_bad_config(tmp_path):
    generator = make_generator(GANimationGenerator, repeat_num=1)
    save_generator(generator, tmp_path / "model.pt", {"image_size": SIZE})
    content = torch.load(tmp_path / "model.pt", weights_only=True)
    torch.save({**content, "version": 2}, tmp_path / "v2.pt")
    with pytest.raises(CheckpointFormatError, match="version 2"):
        load_generator(tmp_path / "v2.pt")
    config = json.loads(content["config"])
    config["family"] = "stargan"
    torch.save({**content, "config": json.dumps(config)}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointFormatError, match="stargan"):
        load_generator(tmp_path / "bad.pt")
    config = json.loads(content["config"]) | {"image_size": "large"}
    torch.save({**content, "config": json.dumps(config)}, tmp_path / "size.pt")
    with pytest.raises(CheckpointFormatError, match="image_size"):
        load_generator(tmp_path / "size.pt")
