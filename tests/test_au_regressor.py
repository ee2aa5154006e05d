"""The shipped AU regressor: file format, recorded accuracy, and that it reads fresh synthetic faces."""
import json

import numpy as np
import pytest
import torch

from ganbatch.eval import EVAL_SEED_OFFSET, AURegressorError, load_au_regressor, predict_aus
from ganbatch.eval.au_regressor import FORMAT, SHIPPED_REGRESSOR, AURegressor, save_au_regressor
from ganbatch.synth import render_face, sample_expression_aus, sample_identities
from ganbatch.targets.aus import AU_NAMES, AU_SCALE, NUM_AUS


def test_shipped_file_is_small_and_weights_only():
    assert SHIPPED_REGRESSOR.stat().st_size <= 2 * 1024 * 1024
    content = torch.load(SHIPPED_REGRESSOR, weights_only=True)
    assert content["format"] == FORMAT
    config = json.loads(content["config"])
    assert config["au_names"] == list(AU_NAMES)
    seeds = config["training"]["identity_seeds"]
    assert seeds["train"] != seeds["validation"] and max(seeds.values()) < EVAL_SEED_OFFSET
    accuracy = config["accuracy"]
    assert set(accuracy["mae_per_au"]) == {*AU_NAMES, "mean"}
    assert accuracy["mae_per_au"]["mean"] < 0.3
    assert accuracy["mae_per_au"]["mean"] < 0.6 * accuracy["trivial_mae_per_au"]["mean"]


def test_beats_the_mean_au_predictor_on_fresh_faces():
    # evaluation identities: never seen in training or validation; half at 64 px, half at 128 px
    rng = np.random.default_rng(123)
    identities = sample_identities(16, EVAL_SEED_OFFSET + 777)
    targets = np.array([sample_expression_aus(rng) for _ in identities])
    readings = np.concatenate([
        predict_aus(np.stack([render_face(identity, aus, size)[0] for identity, aus in zip(identities[half::2],
                                                                                          targets[half::2])]))
        for half, size in ((0, 64), (1, 128))])
    targets = np.concatenate([targets[0::2], targets[1::2]])
    assert readings.shape == (16, NUM_AUS) and readings.dtype == np.float32
    assert readings.min() >= 0 and readings.max() <= AU_SCALE
    regressor_mae = np.abs(readings - targets).mean()
    trivial_mae = np.abs(targets.mean(0) - targets).mean()  # the best constant guess, knowing these very targets
    assert regressor_mae < 0.4 * trivial_mae


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    regressor = AURegressor(width=4).eval()
    path = tmp_path / "regressor.pt"
    save_au_regressor(regressor, path, {"accuracy": {"note": "untrained"}})
    loaded = load_au_regressor(path)
    assert loaded.hparams() == {"width": 4, "input_size": 64}
    assert loaded.info["accuracy"] == {"note": "untrained"}
    images = np.random.default_rng(0).integers(0, 256, (3, 48, 48, 3), dtype=np.uint8)
    np.testing.assert_allclose(predict_aus(images, loaded), predict_aus(images, regressor), atol=1e-6)


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(AURegressorError, match="no AU regressor file"):
        load_au_regressor(tmp_path / "missing.pt")
    other = tmp_path / "other.pt"
    torch.save({"format": "ganbatch", "state_dict": {}}, other)
    with pytest.raises(AURegressorError, match="other.pt: not an AU regressor file"):
        load_au_regressor(other)
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(AURegressorError, match="text.pt"):
        load_au_regressor(text)


def test_predict_checks_images():
    with pytest.raises(ValueError, match="uint8"):
        predict_aus(np.zeros((1, 64, 64, 3), np.float32), AURegressor(width=4).eval())
