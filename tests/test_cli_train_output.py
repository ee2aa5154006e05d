"""What a training run shows people: labelled sample grids, in samples/ and TensorBoard's images tab, and the
driver's progress lines."""
import numpy as np
from PIL import Image

from ganbatch.families import get_family
from ganbatch.families.ganimation import PREVIEW_EXPRESSIONS
from ganbatch.train.monitor import RunFiles, RunMonitor, progress_line, start_line
from ganbatch.train.preview import sample_grid


def test_grid_columns_are_named():
    assert get_family("ganimation").column_labels(len(PREVIEW_EXPRESSIONS)) == ["input", *PREVIEW_EXPRESSIONS]
    assert get_family("gannotation").column_labels(2) == ["input", "target 1", "target 2"]


def test_sample_grid_has_a_labelled_header_row():
    from ganbatch.models.ganimation import GANimationGenerator
    from ganbatch.train.preview import HEADER_HEIGHT

    generator = GANimationGenerator(conv_dim=8, repeat_num=1).eval()
    faces = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    grid = sample_grid(generator, faces, get_family("ganimation").preview_targets(None, len(PREVIEW_EXPRESSIONS)))
    assert grid.shape == (HEADER_HEIGHT + 2 * 2 * 64, 64 * (1 + len(PREVIEW_EXPRESSIONS)), 3)
    header = grid[:HEADER_HEIGHT]
    for column in range(1 + len(PREVIEW_EXPRESSIONS)):  # each header cell holds text (white pixels)
        assert (header[:, column * 64:(column + 1) * 64] > 200).any()
    assert (grid[HEADER_HEIGHT + 64:HEADER_HEIGHT + 64 + 14, :64] > 200).any()  # the "mask" cell label


def test_samples_go_to_tensorboard_images_and_png(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monitor = RunMonitor(RunFiles(str(tmp_path)), "r", 0, 10, {"workers": 1})
    grid = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    monitor.samples(5, grid)
    monitor.close()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "samples" / "step_00000005.png")), grid)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert "samples" in events.Tags()["images"]
    (image,) = events.Images("samples")
    assert (image.step, image.width, image.height) == (5, 60, 40)


def test_progress_lines_from_metrics_records():
    start = {"event": "start", "step": 0, "time": 100.0, "workers": 2, "device": "cpu", "precision": "bf16"}
    assert start_line("r", start, 200) == "[r] starting at step 0 of 200 on 2 worker(s) (cpu, bf16)"
    record = {"step": 50, "time": 110.0, "images_per_s": 26.64, "d_total": 1.23456, "g_total": 3.4, "d_gp": 9.0}
    assert progress_line("r", record, 200, start) == \
        "[r] step 50/200 (25%)  d_total 1.235  g_total 3.4  26.6 img/s  eta 30s"
    assert start_line("r", {**start, "resumed": True, "step": 50}, 200).startswith("[r] resuming from step 50")
