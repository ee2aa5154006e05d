"""The Python API (ganbatch.api): the README's "Python" examples run; a model's frames are the one-clip renderer's
for the targets a job would make; ganbatch.animate is the CLI's job (its PNG frames equal Model.animate's);
import ganbatch loads no torch."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ganbatch
from ganbatch.render import render_clip
from ganbatch.synth import render_face, sample_identity
from ganbatch.targets import expression_aus, expression_schedule

README = Path(__file__).resolve().parent.parent / "README.md"


def python_examples() -> list[str]:
    """The ```python blocks of the README's "Python" section."""
    section = README.read_text().split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


@pytest.fixture
def face_png(tmp_path, monkeypatch):
    """face.png (a synthetic face, 200x160: not the model's size nor square) in the working directory."""
    monkeypatch.chdir(tmp_path)
    face = render_face(sample_identity(3), expression_aus("neutral"), 200)[0][:, 20:180]
    Image.fromarray(face).save(tmp_path / "face.png")
    return tmp_path / "face.png"


def test_the_readme_model_example_runs(face_png):
    namespace = {}
    exec(python_examples()[0], namespace)
    assert namespace["frames"].shape == (32, 64, 64, 3) and namespace["frames"].dtype == np.uint8
    assert len(namespace["smile"]) == 2 * 25 - 1  # 1 s at 25 fps, there and back
    assert len(namespace["path"]) == 21  # up to the last keyframe, at 0.8 s


def test_model_frames_are_the_renderers_for_the_targets_a_job_makes(face_png):
    model = ganbatch.load_model("demo", runtime="torch")
    frames = model.animate(str(face_png), "happy:0.8", frames=9, easing="linear", input_first=True)
    face = np.asarray(Image.open(face_png).resize((64, 64), Image.Resampling.LANCZOS, box=(0, 20, 160, 180)))
    targets = expression_schedule(np.zeros(17, np.float32), expression_aus("happy", 0.8), frames=9,
                                  easing="linear", input_first=True).targets()
    expected = render_clip(model.runtime, model.info, face, targets, input_first=True).frames
    np.testing.assert_array_equal(frames, expected)
    # a PIL image and an array give the same frames as the path
    np.testing.assert_array_equal(model.animate(Image.open(face_png), "happy:0.8", frames=9, easing="linear",
                                                input_first=True), frames)


def test_targets_of_every_kind_and_their_mistakes(face_png):
    model = ganbatch.load_model("demo", runtime="torch")
    au = model.animate(face_png, {"AU12": 3.0}, frames=5, source_aus={"AU12": 1.0})
    assert au.shape == (5, 64, 64, 3)
    assert not np.array_equal(au[0], model.animate(face_png, {"AU12": 3.0}, frames=5)[0])  # the path starts there
    keyframes = {"fps": 10, "keyframes": [{"frame": 0, "preset": "neutral"}, {"at": 0.5, "preset": "sad"}]}
    assert len(model.animate(face_png, keyframes)) == 6
    with pytest.raises(ValueError, match="unknown expression|expression"):
        model.animate(face_png, "grumpy")
    with pytest.raises(ValueError, match="gannotation|landmarks"):
        model.animate(face_png, np.zeros((66, 2), np.float32))  # landmarks do not drive a GANimation model
    landmark_model = ganbatch.load_model("demo-gannotation", runtime="torch")
    points = np.random.default_rng(0).uniform(20, 44, (3, 68, 2)).astype(np.float32)
    assert landmark_model.animate(face_png, points).shape == (3, landmark_model.image_size,
                                                              landmark_model.image_size, 3)
    with pytest.raises(TypeError, match="a target is"):
        model.animate(face_png, 3)


def test_run_job_takes_a_dict_or_a_file(tmp_path):
    result = ganbatch.run_job({"kind": "synth", "out": str(tmp_path / "a"), "identities": 2, "per_identity": 2,
                               "size": 64})
    assert result.ok and (tmp_path / "a" / "contact_sheet.png").is_file()
    (tmp_path / "job.yaml").write_text(f"kind: synth\nout: {tmp_path / 'b'}\nidentities: 2\nper_identity: 2\n"
                                       "size: 64\ncontact_sheet: false\n")
    assert ganbatch.run_job(tmp_path / "job.yaml").outputs == {"data": str(tmp_path / "b")}
    from ganbatch.jobs.problems import ManifestError

    with pytest.raises(ManifestError, match="identities"):
        ganbatch.run_job({"kind": "synth", "out": str(tmp_path / "c"), "identities": 0})


def test_import_ganbatch_loads_no_torch():
    code = "import sys, ganbatch; assert callable(ganbatch.load_model); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@pytest.mark.slow
def test_the_readme_job_example_runs_the_clis_job(ray_local, face_png):
    namespace = {"ganbatch": ganbatch}  # the second block follows the first
    exec(python_examples()[1], namespace)
    result = namespace["result"]
    assert result.ok and result.succeeded == 2 and {row["status"] for row in result.rows} == {"ok"}
    assert (face_png.parent / "videos" / "face__happy.gif").is_file()
    assert namespace["data"].ok
    # the job's lossless frames are Model.animate's for the same target
    png = ganbatch.animate([str(face_png)], out="frames/", targets=[{"expression": "sad", "frames": 6}],
                           format="png", runtime="torch", batch_size=4)
    assert png.succeeded == 1
    folder = face_png.parent / "frames" / "face__sad"
    got = np.stack([np.asarray(Image.open(path)) for path in sorted(folder.glob("frame_*.png"))])
    expected = ganbatch.load_model("demo", runtime="torch").animate(face_png, "sad", frames=6)
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(TypeError, match="unknown animate option"):
        ganbatch.animate([str(face_png)], out="x/", colour="red")
