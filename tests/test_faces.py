"""Face detection backends, square crops and paste-back (ganbatch.faces)."""
import importlib.util
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

from ganbatch.faces import (
    BackendUnavailable,
    CropTransform,
    Face,
    available_backends,
    crop_face,
    crop_with_transform,
    fit_to_size,
    get_detector,
    largest_face,
    paste_back,
)
from ganbatch.faces import detect as detect_module
from ganbatch.targets.landmarks import IBUG_PARTS

FIXTURE_CROPS = ["ganimation_sample_dataset/imgs/*.jpg", "gannotation/test_1.jpg"]
PLACED_AT = (100, 60)  # (x, y) of the face crop's top-left corner on the canvas
UPSCALE = 2  # the 128 px fixture crops are scaled to 256 px: dlib's HOG misses some 128 px faces on noise


@pytest.fixture
def fresh_detector_cache():
    """Forget cached detectors before and after a test that changes the environment they are built in."""
    detect_module._build_detector.cache_clear()
    yield
    detect_module._build_detector.cache_clear()


def iou(a, b):
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def fixture_canvases(shared_fixtures):
    """(name, canvas, placed box) for every fixture face crop, scaled up and pasted on a noisy 500x400 canvas."""
    paths = sorted(p for pattern in FIXTURE_CROPS for p in shared_fixtures.glob(pattern))
    assert len(paths) == 5
    rng = np.random.default_rng(0)
    for path in paths:
        face = Image.open(path).convert("RGB")
        side = face.width * UPSCALE
        face = np.asarray(face.resize((side, side), Image.Resampling.BICUBIC))
        canvas = rng.integers(0, 256, (400, 500, 3), dtype=np.uint8)
        x, y = PLACED_AT
        canvas[y : y + side, x : x + side] = face
        yield path.name, canvas, (x, y, x + side, y + side)


def part_centre(landmarks, part):
    """Mean (x, y) of one iBUG part."""
    start, end = IBUG_PARTS[part]
    return landmarks[start:end].mean(axis=0)


# ---------------------------------------------------------------------------------------------- detection


def test_dlib_finds_the_fixture_faces_with_plausible_landmarks(shared_fixtures):
    detector = get_detector("dlib")
    for name, canvas, placed in fixture_canvases(shared_fixtures):
        face = largest_face(detector.detect(canvas))
        assert face is not None, f"no face found in {name}"
        assert iou(face.box, placed) > 0.6, (name, face.box, placed)
        assert face.landmarks.shape == (68, 2)
        # Landmarks sit around the box (the chin may hang slightly below a HOG box), never far outside it.
        x0, y0, x1, y1 = face.box
        slack = 0.15 * (x1 - x0)
        assert np.all(face.landmarks >= [x0 - slack, y0 - slack]), name
        assert np.all(face.landmarks <= [x1 + slack, y1 + slack]), name
        eyes_y = (part_centre(face.landmarks, "right_eye")[1] + part_centre(face.landmarks, "left_eye")[1]) / 2
        chin_y = face.landmarks[sum(IBUG_PARTS["jaw"]) // 2, 1]  # the jaw's middle point
        assert eyes_y < part_centre(face.landmarks, "nose_base")[1] < part_centre(face.landmarks, "outer_lips")[1]
        assert part_centre(face.landmarks, "outer_lips")[1] < chin_y, name
        # iBUG "right eye" is the subject's right, on the image's left.
        assert part_centre(face.landmarks, "right_eye")[0] < part_centre(face.landmarks, "left_eye")[0]


def test_lbp_boxes_cover_the_fixture_faces(shared_fixtures):
    detector = get_detector("lbp")
    found = 0
    for name, canvas, placed in fixture_canvases(shared_fixtures):
        faces = detector.detect(canvas)
        assert all(face.landmarks is None and face.score is None for face in faces)
        assert all(iou(face.box, placed) > 0.5 for face in faces), (name, [f.box for f in faces])
        found += bool(faces)
    assert found >= 4  # the cascade misses N_0000000356_00190 (a strongly lit, slightly turned face)


@pytest.mark.parametrize("backend", ["dlib", "lbp"])
def test_no_face_on_faceless_canvases(backend):
    detector = get_detector(backend)
    noise = np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    assert detector.detect(noise) == []
    assert detector.detect(np.full((300, 400, 3), 128, dtype=np.uint8)) == []


def test_detect_rejects_non_rgb_uint8():
    detector = get_detector("lbp")
    with pytest.raises(ValueError, match="uint8 RGB"):
        detector.detect(np.zeros((32, 32), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8 RGB"):
        detector.detect(np.zeros((32, 32, 3), dtype=np.float32))


def test_detectors_are_cached_per_process():
    assert get_detector("dlib") is get_detector("dlib")
    assert get_detector("lbp", device="cuda") is get_detector("lbp")  # CPU-only backends ignore the device


def test_unknown_backend_is_a_value_error():
    with pytest.raises(ValueError, match="haar"):
        get_detector("haar")


def test_face_alignment_without_weights_is_unavailable_and_auto_falls_back(
    tmp_path, monkeypatch, fresh_detector_cache
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    checkpoints = tmp_path / "hub" / "checkpoints"
    with pytest.raises(BackendUnavailable) as error:
        get_detector("face-alignment")
    message = str(error.value)
    assert "s3fd-619a316812.pth" in message and "2DFAN4-11f355bf06.pth.tar" in message
    assert str(checkpoints) in message
    assert not checkpoints.exists() or not any(checkpoints.iterdir())  # nothing was downloaded
    assert "face-alignment" not in available_backends()
    assert get_detector("auto").name == "dlib"
    assert get_detector("auto") is get_detector("dlib")


def test_face_alignment_weight_names_match_the_installed_package():
    pytest.importorskip("face_alignment")
    from face_alignment.api import models_urls as fan_urls
    from face_alignment.detection.sfd.sfd_detector import models_urls as sfd_urls

    backend = detect_module.FaceAlignmentDetector
    assert Path(urlparse(sfd_urls["s3fd"]).path).name == backend.DETECTOR_WEIGHTS
    assert Path(urlparse(fan_urls["2DFAN-4"]).path).name == backend.LANDMARK_WEIGHTS


def test_face_alignment_is_built_without_compile_on_the_given_device(tmp_path, monkeypatch, fresh_detector_cache):
    """With the weight files present, the backend builds FaceAlignment with the cheap options and converts its output.

    FaceAlignment itself is replaced: its real weights cannot be fetched here.
    """
    face_alignment = pytest.importorskip("face_alignment")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    for name in ("s3fd-619a316812.pth", "2DFAN4-11f355bf06.pth.tar"):
        (checkpoints / name).touch()
    points = np.random.default_rng(2).uniform(20, 80, (68, 2))

    class RecordingFaceAlignment:
        def __init__(self, landmarks_type, **kwargs):
            self.landmarks_type, self.kwargs = landmarks_type, kwargs

        def get_landmarks_from_image(self, image, return_bboxes=False):
            assert return_bboxes
            return [points], None, [np.array([10.0, 12.0, 90.0, 95.0, 0.99])]

    monkeypatch.setattr(face_alignment, "FaceAlignment", RecordingFaceAlignment)
    assert available_backends()[0] == "face-alignment"
    detector = get_detector("auto", device="cpu")
    model = detector._model
    assert model.landmarks_type == face_alignment.LandmarksType.TWO_D
    assert model.kwargs["device"] == "cpu" and model.kwargs["compile"] is False
    assert model.kwargs["face_detector_kwargs"]["path_to_detector"] == str(checkpoints / "s3fd-619a316812.pth")
    [face] = detector.detect(np.zeros((100, 100, 3), dtype=np.uint8))
    assert face.box == (10.0, 12.0, 90.0, 95.0) and face.score == pytest.approx(0.99)
    np.testing.assert_array_equal(face.landmarks, points)


def test_missing_package_names_the_extra(monkeypatch, fresh_detector_cache):
    real_find_spec = importlib.util.find_spec

    def find_spec_without_dlib(name, *args):
        return None if name == "dlib" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec_without_dlib)
    with pytest.raises(BackendUnavailable, match=r"'dlib'.*pip install ganbatch\[faces\]"):
        get_detector("dlib")
    assert "dlib" not in available_backends()


def test_largest_face():
    small, big = Face(box=(0, 0, 10, 10)), Face(box=(5, 5, 30, 20))
    assert largest_face([small, big, small]) is big
    assert largest_face([]) is None


# ------------------------------------------------------------------------------------------------- crops


def test_transform_apply_and_invert_round_trip():
    rng = np.random.default_rng(3)
    transform = CropTransform(x0=-13.25, y0=40.5, side=173.0, size=128)
    points = rng.uniform(-50, 300, (10, 2))
    np.testing.assert_allclose(transform.invert(transform.apply(points)), points, atol=1e-9)
    np.testing.assert_allclose(transform.apply(transform.invert(points)), points, atol=1e-9)
    # The box corners (pixel edges) map to the crop's outer edges, -0.5 and size - 0.5 in pixel-centre coordinates.
    corners = np.array([[transform.x0, transform.y0], [transform.box[2], transform.box[3]]]) - 0.5
    np.testing.assert_allclose(transform.apply(corners), [[-0.5, -0.5], [127.5, 127.5]])


@pytest.mark.parametrize("side", [40.0, 130.5])  # upscaled and downscaled crops
def test_crop_content_follows_the_transform(side):
    """A bright blob at a known point of the image appears in the crop where transform.apply puts it."""
    centre = np.array([70.3, 55.8])
    ys, xs = np.mgrid[0:120, 0:160]
    blob = 255 * np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * 4.0**2))
    image = np.repeat(blob[..., None], 3, axis=2).round().astype(np.uint8)
    transform = CropTransform(x0=centre[0] - 0.4 * side, y0=centre[1] - 0.55 * side, side=side, size=64)
    crop = crop_with_transform(image, transform)[..., 0].astype(float)
    crop[crop < 0.2 * crop.max()] = 0  # centroid of the blob's core only
    cy, cx = np.mgrid[0:64, 0:64]
    found = np.array([(cx * crop).sum(), (cy * crop).sum()]) / crop.sum()
    np.testing.assert_allclose(found, transform.apply(centre), atol=0.25)


def test_crop_face_is_square_and_centred_on_the_landmarks():
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    landmarks = rng.uniform([100, 80], [180, 140], (68, 2))  # 80 wide, 60 tall
    crop, transform = crop_face(image, Face(box=(0, 0, 1, 1), landmarks=landmarks), size=96, margin=0.5)
    assert crop.shape == (96, 96, 3) and crop.dtype == np.uint8
    extent = landmarks.max(axis=0) - landmarks.min(axis=0)
    assert transform.side == pytest.approx(1.5 * extent.max())
    middle = (landmarks.min(axis=0) + landmarks.max(axis=0)) / 2
    np.testing.assert_allclose(transform.apply(middle), [47.5, 47.5])  # the crop's centre pixel coordinate


def test_crop_face_uses_the_box_without_landmarks():
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    _, transform = crop_face(image, Face(box=(20, 30, 60, 50)), size=32, margin=0.0)
    assert transform.box == pytest.approx((20, 20, 60, 60))


def test_crop_past_the_border_replicates_the_edge():
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    image[:, 0] = (255, 0, 0)  # red left column, black elsewhere
    image[:, 1:] = (0, 0, 255)
    face = Face(box=(-30, 20, 30, 80))  # centred on the border: half the crop lies left of the image
    crop, transform = crop_face(image, face, size=60, margin=0.0)
    assert crop.shape == (60, 60, 3)
    assert transform.box == pytest.approx((-30, 20, 30, 80))
    outside = crop[:, : 30 - 2]  # crop columns left of the image border, minus the filter's reach
    np.testing.assert_array_equal(outside, np.broadcast_to([255, 0, 0], outside.shape))
    np.testing.assert_array_equal(crop[:, 33:], np.broadcast_to([0, 0, 255], crop[:, 33:].shape))


def test_fit_to_size():
    model_sized = np.random.default_rng(5).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    np.testing.assert_array_equal(fit_to_size(model_sized, 128), model_sized)
    wide = np.zeros((100, 300, 3), dtype=np.uint8)
    wide[:, :100], wide[:, 100:200], wide[:, 200:] = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    fitted = fit_to_size(wide, 64)
    assert fitted.shape == (64, 64, 3)
    np.testing.assert_allclose(fitted.reshape(-1, 3).mean(axis=0), [0, 255, 0], atol=2)  # the centred square


# ---------------------------------------------------------------------------------------------- paste-back


def smooth_image(height, width, phase=0.0):
    """A smooth colour image (low-frequency sinusoids), where resampling filters agree closely."""
    ys, xs = np.mgrid[0:height, 0:width] / max(height, width)
    channels = [np.sin(2 * np.pi * (xs + 0.5 * ys) + phase + k) for k in range(3)]
    return (127.5 + 100 * np.stack(channels, axis=-1)).round().astype(np.uint8)


def test_paste_back_with_full_attention_returns_the_photo():
    photo = np.random.default_rng(6).integers(0, 256, (120, 150, 3), dtype=np.uint8)
    frames = np.random.default_rng(7).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    transform = CropTransform(x0=30.7, y0=-10.2, side=70.0, size=32)
    video = paste_back(photo, frames, np.ones((4, 32, 32)), transform)
    assert video.shape == (4, 120, 150, 3) and video.dtype == np.uint8
    np.testing.assert_array_equal(video, np.broadcast_to(photo, video.shape))


@pytest.mark.parametrize("x0", [50, -24])  # box inside the photo, and box hanging past the left border
def test_paste_back_without_attention_or_feather_places_the_resized_crop(x0):
    photo = np.random.default_rng(8).integers(0, 256, (160, 200, 3), dtype=np.uint8)
    frames = np.stack([smooth_image(48, 48), smooth_image(48, 48, phase=1.0)])
    y0, side = 40, 96
    video = paste_back(photo, frames, np.zeros((2, 48, 48)), CropTransform(x0=x0, y0=y0, side=side, size=48), feather=0)
    visible = slice(max(x0, 0), x0 + side)
    for frame, out in zip(frames, video):
        expected = np.asarray(Image.fromarray(frame).resize((side, side), Image.Resampling.BICUBIC))
        region = out[y0 : y0 + side, visible].astype(int)
        difference = np.abs(region - expected[:, max(-x0, 0) :])
        assert difference.mean() < 1.0 and difference.max() <= 4
        outside = np.ones(photo.shape[:2], dtype=bool)
        outside[y0 : y0 + side, visible] = False
        np.testing.assert_array_equal(out[outside], photo[outside])


def test_paste_back_blends_each_frame_with_its_attention():
    photo = np.full((60, 80, 3), 100, dtype=np.uint8)
    frames = np.full((3, 16, 16, 3), 200, dtype=np.uint8)
    attention = np.array([0.0, 0.5, 1.0])[:, None, None] * np.ones((3, 16, 16))
    video = paste_back(photo, frames, attention, CropTransform(x0=20, y0=10, side=32, size=16), feather=0)
    inside = video[:, 10:42, 20:52]
    np.testing.assert_array_equal(inside[0], 200)  # attention 0: the model's pixels
    np.testing.assert_array_equal(inside[1], 150)  # halfway
    np.testing.assert_array_equal(inside[2], 100)  # attention 1: the photo's pixels
    np.testing.assert_array_equal(video[:, :10], 100)
    np.testing.assert_array_equal(video[:, :, 52:], 100)


def test_paste_back_feathering_is_smooth_and_monotone():
    photo = np.zeros((100, 140, 3), dtype=np.uint8)
    frames = np.full((1, 32, 32, 3), 255, dtype=np.uint8)
    x0, side, feather = 20, 96, 0.25
    video = paste_back(photo, frames, None, CropTransform(x0=x0, y0=2, side=side, size=32), feather=feather)
    row = video[0, 50, :, 0].astype(int)
    assert np.all(row[:x0] == 0) and np.all(row[x0 + side :] == 0)
    rising, falling = row[x0 : x0 + side // 2], row[x0 + side // 2 : x0 + side]
    assert np.all(np.diff(rising) >= 0) and np.all(np.diff(falling) <= 0)
    ramp = int(feather * side)
    assert row[x0 + ramp : x0 + side - ramp].min() == 255  # full weight beyond the feathered band
    assert row[x0] < 10 and len(np.unique(rising)) > ramp // 2  # starts near zero, many intermediate levels
    # smoothstep's steepest slope is 1.5 / (feather * side) of the full step per pixel
    assert np.abs(np.diff(row)).max() <= 255 * 1.5 / ramp + 1


def test_paste_back_rejects_mismatched_inputs():
    photo = np.zeros((50, 50, 3), dtype=np.uint8)
    transform = CropTransform(x0=0, y0=0, side=20, size=16)
    with pytest.raises(ValueError, match="crop_frames"):
        paste_back(photo, np.zeros((2, 20, 20, 3), dtype=np.uint8), None, transform)
    with pytest.raises(ValueError, match="attention"):
        paste_back(photo, np.zeros((2, 16, 16, 3), dtype=np.uint8), np.zeros((2, 16, 15)), transform)
    with pytest.raises(ValueError, match="feather"):
        paste_back(photo, np.zeros((2, 16, 16, 3), dtype=np.uint8), None, transform, feather=0.7)
