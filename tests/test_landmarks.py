"""Landmark layouts, files, flipping, GANnotation's crop rule and heatmaps (against a slow reference)."""
import io
import itertools
import math

import numpy as np
import pytest

from ganbatch.targets import landmark_heatmaps
from ganbatch.targets.landmarks import (
    GANNOTATION_FLIP,
    IBUG_FLIP,
    IBUG_PARTS,
    BoxCrop,
    LandmarkError,
    flip_landmarks,
    gannotation_crop,
    gannotation_crop_box,
    read_landmarks,
    to_gannotation66,
    write_landmarks,
)

RNG = np.random.default_rng(0)


def random_points(frames, count, low=10.0, high=110.0):
    return RNG.uniform(low, high, size=(frames, count, 2)).astype(np.float32)


# ---------------------------------------------------------------------------------------------------- reference heatmap


def reference_kernel():
    """GANnotation's `_gaussian(7)`: amplitude 1, centre at 1-based cell 0.5 * 7 + 0.5 = 4, spread 0.25 * 7."""
    kernel = np.empty((7, 7), dtype=np.float32)
    for row in range(7):
        for col in range(7):
            dx = (col + 1 - 4) / (0.25 * 7)
            dy = (row + 1 - 4) / (0.25 * 7)
            kernel[row][col] = math.exp(-(dx * dx / 2.0 + dy * dy / 2.0))
    return kernel


def reference_heatmap(point, size):
    """One map as GANnotation's `draw_gaussian(zeros, point, sigma=1)` makes it, one point at a time.

    The point is rounded to 2 decimals (NumPy rounding, as the original rounds NumPy floats); the 7x7 window
    runs from floor(p - 3) to floor(p + 3) in 1-based pixels; a window wholly outside is skipped; the window is
    cut to 1..size and the kernel read from max(1, -start) on, both as 1-based inclusive ranges; the sum is
    clipped to 1.
    """
    image = np.zeros((size, size))
    x, y = round(np.float64(point[0]), 2), round(np.float64(point[1]), 2)
    x_start, y_start = math.floor(x - 3), math.floor(y - 3)
    x_end, y_end = math.floor(x + 3), math.floor(y + 3)
    if x_start > size or y_start > size or x_end < 1 or y_end < 1:
        return image
    kernel = reference_kernel()
    kx_first = max(1, -x_start)
    kx_last = min(x_end, size) - max(1, x_start) + kx_first
    ky_first = max(1, -y_start)
    ky_last = min(y_end, size) - max(1, y_start) + ky_first
    ix_first, ix_last = max(1, x_start), min(x_end, size)
    iy_first, iy_last = max(1, y_start), min(y_end, size)
    image[iy_first - 1:iy_last, ix_first - 1:ix_last] += kernel[ky_first - 1:ky_last, kx_first - 1:kx_last]
    image[image > 1] = 1
    return image


def reference_heatmaps(points, size):
    return np.stack([[reference_heatmap(p, size) for p in frame] for frame in points]).astype(np.float32)


def test_heatmaps_match_the_reference_on_interior_points():
    points = random_points(3, 66, 5.0, 120.0)
    np.testing.assert_allclose(landmark_heatmaps(points), reference_heatmaps(points, 128), rtol=1e-6, atol=0)


# Coordinates that cut the window at the low and high borders, leave it wholly outside, or round up across an integer.
BORDER_COORDINATES = [-5.0, -4.2, -3.0, -2.5, -1.0, 0.0, 0.4, 1.0, 2.0, 2.999, 3.5, 4.996, 60.0,
                      126.5, 127.0, 128.0, 129.3, 130.0, 131.0, 132.0, 134.5]


def test_heatmaps_match_the_reference_on_border_points():
    grid = np.array(list(itertools.product(BORDER_COORDINATES, BORDER_COORDINATES)), dtype=np.float64)
    points = grid.reshape(7, -1, 2)
    np.testing.assert_allclose(landmark_heatmaps(points), reference_heatmaps(points, 128), rtol=1e-6, atol=0)


def test_heatmaps_match_the_reference_at_another_size():
    points = np.array([[[0.5, 30.25], [31.0, 2.0], [17.126, 17.124], [-3.5, 33.0]]])
    np.testing.assert_allclose(landmark_heatmaps(points, size=32), reference_heatmaps(points, 32), rtol=1e-6)


def test_heatmap_peak_position_and_falloff_by_hand():
    # point (10.3, 20.7): floor gives 1-based column 10 and row 20, i.e. 0-based (row 19, column 9)
    heatmap = landmark_heatmaps(np.array([[10.3, 20.7]]))[0, 0]
    assert np.unravel_index(np.argmax(heatmap), heatmap.shape) == (19, 9) and heatmap[19, 9] == 1.0
    assert heatmap[19, 10] == pytest.approx(math.exp(-1 / (2 * 1.75**2)), rel=1e-6)
    assert np.count_nonzero(heatmap) == 49


def test_heatmaps_of_a_clip_are_vectorised():
    maps = landmark_heatmaps(random_points(100, 66))
    assert maps.shape == (100, 66, 128, 128) and maps.dtype == np.float32
    assert np.all(maps.max(axis=(2, 3)) == 1.0)
    assert landmark_heatmaps(random_points(1, 66)[0]).shape == (1, 66, 128, 128)


# ---------------------------------------------------------------------------------------------------- files


def test_read_text_landmarks_in_gannotation_order(tmp_path):
    frames = random_points(3, 66)
    path = tmp_path / "clip.txt"
    write_landmarks(path, frames)
    read = read_landmarks(path)
    assert read.shape == (3, 66, 2) and read.dtype == np.float32
    np.testing.assert_allclose(read, frames, atol=1e-4)
    # GANnotation's demo reads such a file as loadtxt(...).transpose().reshape(66, 2, -1)
    demo = np.loadtxt(path).transpose().reshape(66, 2, -1)
    np.testing.assert_allclose(read, demo.transpose(2, 0, 1), atol=1e-6)


def test_read_comma_separated_68_points_from_a_stream():
    frame = random_points(1, 68)[0]
    text = ",".join(f"{v:.3f}" for v in frame.reshape(-1)) + "\n"
    read = read_landmarks(io.StringIO(text))
    assert read.shape == (1, 68, 2)
    np.testing.assert_allclose(read[0, 5], frame[5], atol=1e-3)


@pytest.mark.parametrize("shape", [(68, 2), (4, 66, 2)])
def test_read_npy_landmarks(tmp_path, shape):
    points = RNG.uniform(0, 100, size=shape).astype(np.float32)
    path = tmp_path / "points.npy"
    np.save(path, points)
    read = read_landmarks(path)
    np.testing.assert_array_equal(read, points.reshape((-1,) + shape[-2:]))
    buffer = io.BytesIO()
    np.save(buffer, points)
    buffer.seek(0)
    np.testing.assert_array_equal(read_landmarks(buffer), read)


def test_write_npy_round_trip(tmp_path):
    points = random_points(2, 68)
    write_landmarks(tmp_path / "p.npy", points)
    np.testing.assert_array_equal(read_landmarks(tmp_path / "p.npy"), points)


def test_landmark_file_errors(tmp_path):
    bad_count = tmp_path / "bad.txt"
    bad_count.write_text(" ".join(["1"] * 130) + "\n")
    with pytest.raises(LandmarkError, match=r"bad.txt: 130 numbers per row; expected 136 .* or 132"):
        read_landmarks(bad_count)
    not_numbers = tmp_path / "words.txt"
    not_numbers.write_text("x1 y1 x2 y2\n")
    with pytest.raises(LandmarkError, match="words.txt"):
        read_landmarks(not_numbers)
    np.save(tmp_path / "wrong.npy", np.zeros((5, 2)))
    with pytest.raises(LandmarkError, match=r"wrong.npy: .*\(1, 5, 2\)"):
        read_landmarks(tmp_path / "wrong.npy")


# ---------------------------------------------------------------------------------------------------- layouts


def test_to_gannotation66_drops_the_inner_mouth_corners():
    points = np.stack([np.arange(68), -np.arange(68)], axis=-1).astype(np.float32)
    reduced = to_gannotation66(np.stack([points, points]))
    assert reduced.shape == (2, 66, 2)
    assert list(reduced[0, :, 0]) == list(range(60)) + [61, 62, 63, 65, 66, 67]
    np.testing.assert_array_equal(to_gannotation66(reduced), reduced)
    with pytest.raises(LandmarkError):
        to_gannotation66(np.zeros((5, 2)))


def test_gannotation_flip_matches_gannotations_mirror_table():
    # flip_ImAndPts in GANnotation's utils.py lists the mirror as 1-based ranges, transcribed here
    one_based = (list(range(17, 0, -1)) + list(range(27, 17, -1)) + list(range(28, 32)) + list(range(36, 31, -1))
                 + list(range(46, 42, -1)) + [48, 47] + list(range(40, 36, -1)) + [42, 41]
                 + list(range(55, 48, -1)) + list(range(60, 55, -1)) + list(range(63, 60, -1))
                 + list(range(66, 63, -1)))
    np.testing.assert_array_equal(GANNOTATION_FLIP, np.array(one_based) - 1)


@pytest.mark.parametrize("count", [68, 66])
def test_flip_is_an_involution(count):
    points = random_points(2, count)
    np.testing.assert_allclose(flip_landmarks(flip_landmarks(points, 128), 128), points, atol=1e-5)


def test_flip_maps_the_left_eye_onto_the_right_eye():
    points = random_points(1, 68)[0]
    flipped = flip_landmarks(points, 200)
    right, left = IBUG_PARTS["right_eye"], IBUG_PARTS["left_eye"]
    mirrored_left = {(round(200 - x, 3), round(y, 3)) for x, y in points[left[0]:left[1]]}
    assert {(round(x, 3), round(y, 3)) for x, y in flipped[right[0]:right[1]]} == mirrored_left
    # outer eye corners (36 and 45) and mouth corners (48 and 54) trade places
    np.testing.assert_allclose(flipped[36], [200 - points[45, 0], points[45, 1]], atol=1e-4)
    np.testing.assert_allclose(flipped[48], [200 - points[54, 0], points[54, 1]], atol=1e-4)
    assert sorted(IBUG_FLIP) == list(range(68))


# ---------------------------------------------------------------------------------------------------- crop


def face_points(x0, x1, y0, y1, count=66):
    """Landmarks spread over the box x0..x1, y0..y1, with its corners among them."""
    points = np.column_stack([RNG.uniform(x0, x1, count), RNG.uniform(y0, y1, count)]).astype(np.float32)
    points[0], points[1] = (x0, y0), (x1, y1)
    return points


def test_crop_box_by_hand():
    # extent 60 x 80 px: mean 70, margin int(16 * 70 / 100) = 11, box rounded extent -/+ 11
    assert gannotation_crop_box(face_points(50, 110, 40, 120), 200, 150) == (39, 29, 121, 131)
    # mean extent 12 px < 20: margin 8
    assert gannotation_crop_box(face_points(50, 60, 40, 54), 200, 150) == (42, 32, 68, 62)
    # clamped to the image; the last row and column are never included
    assert gannotation_crop_box(face_points(5, 195, 2, 148), 200, 150) == (0, 0, 199, 149)


def test_crop_image_points_and_transform():
    height, width = 150, 200
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[..., 0] = np.arange(width, dtype=np.uint8)[None, :]  # red encodes the column
    image[..., 1] = np.arange(height, dtype=np.uint8)[:, None]  # green encodes the row
    points = face_points(50, 110, 40, 120)
    crop, cropped, transform = gannotation_crop(image, points)
    assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
    assert transform.box == (39, 29, 121, 131)
    assert transform.scale == pytest.approx((128 / 82, 128 / 102))
    np.testing.assert_allclose(cropped, (points - [39, 29]) * [128 / 82, 128 / 102], rtol=1e-5)
    # the crop shows columns 39..120 and rows 29..130 of the image, left to right and top to bottom
    assert abs(int(crop[64, 0, 0]) - 39) <= 1 and abs(int(crop[64, -1, 0]) - 120) <= 1
    assert abs(int(crop[0, 64, 1]) - 29) <= 1 and abs(int(crop[-1, 64, 1]) - 130) <= 1


def test_crop_transform_round_trip():
    transform = BoxCrop(box=(39, 29, 121, 131), size=(128, 128))
    points = random_points(4, 66, -20, 300)
    np.testing.assert_allclose(transform.invert(transform.apply(points)), points, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(transform.apply([[39, 29], [121, 131]]), [[0, 0], [128, 128]], atol=1e-5)


def test_crop_of_a_clip_uses_the_first_frame_and_keeps_the_shape():
    frames = np.stack([face_points(50, 110, 40, 120), face_points(60, 100, 50, 110)])
    crop, cropped, transform = gannotation_crop(np.zeros((150, 200), np.uint8), frames, size=64)
    assert crop.shape == (64, 64) and cropped.shape == frames.shape and transform.box == (39, 29, 121, 131)


def test_degenerate_landmarks_are_refused():
    with pytest.raises(LandmarkError, match="no area"):
        gannotation_crop_box(np.full((66, 2), 250.0), 200, 150)
