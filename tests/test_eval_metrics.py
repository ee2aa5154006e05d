"""Evaluation metrics against hand-computed values and properties of the synthetic world."""
import math

import numpy as np
import pytest
from scipy import ndimage

from ganbatch.eval import metrics
from ganbatch.synth import render_face, sample_identity
from ganbatch.targets.aus import apply_aus
from ganbatch.targets.landmarks import IBUG_PARTS


def test_psnr_of_a_known_error():
    reference = np.full((8, 8, 3), 100, np.uint8)
    # every value off by 10: MSE 100, PSNR = 10 log10(255^2 / 100)
    assert metrics.psnr(reference, reference + 10) == pytest.approx(10 * math.log10(255**2 / 100))
    # half of the rows off by 20: MSE = 400 / 2 = 200
    image = reference.copy()
    image[:4] += 20
    assert metrics.psnr(reference, image) == pytest.approx(10 * math.log10(255**2 / 200))


def test_identical_images():
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert metrics.psnr(image, image) == metrics.PSNR_CAP
    assert metrics.ssim(image, image) == pytest.approx(1.0)
    assert metrics.ssim(image, 255 - image) < 0.5


def test_image_checks():
    with pytest.raises(ValueError, match="shape"):
        metrics.psnr(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        metrics.ssim(np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 3), np.float32))


def test_masked_abs_error():
    reference = np.zeros((6, 6, 3), np.uint8)
    image = reference.copy()
    image[:2] = 6
    where = np.zeros((6, 6), bool)
    where[:2] = True
    assert metrics.masked_abs_error(reference, image, where) == pytest.approx(6.0)
    assert metrics.masked_abs_error(reference, image, ~where) == 0.0
    with pytest.raises(ValueError, match="no pixels"):
        metrics.masked_abs_error(reference, image, np.zeros((6, 6), bool))


@pytest.fixture(scope="module")
def smile():
    """(source, target) renders of one identity: neutral and a full lip-corner pull (AU12 = 5), at 64 px."""
    identity = sample_identity(3)
    return render_face(identity, np.zeros(17), 64), render_face(identity, apply_aus(np.zeros(17), {"AU12": 5}), 64)


def test_expression_mask_covers_the_mouth_of_an_au12_pair(smile):
    (_, source_points), (_, target_points) = smile
    mask = metrics.expression_mask([source_points, target_points], 64)
    mouth = slice(IBUG_PARTS["outer_lips"][0], IBUG_PARTS["inner_lips"][1])
    for points in (source_points, target_points):
        columns, rows = np.round(points[mouth]).astype(int).T
        assert mask[rows, columns].all()
    assert not mask[0, 0] and not mask[0, -1]  # background corners stay outside
    assert 0.2 < mask.mean() < 0.8


def test_expression_mask_holds_what_the_expression_changes(smile):
    (source, source_points), (target, target_points) = smile
    changed = np.abs(source.astype(int) - target).max(-1) > 10
    mask = metrics.expression_mask([source_points, target_points], 64)
    assert changed.sum() > 20
    assert (changed & mask).sum() >= 0.99 * changed.sum()
    # the smile changes nothing outside the mask, so copying the source is exact there
    assert metrics.masked_abs_error(target, source, ~mask) < 0.5


def test_monotone_fraction():
    rising = np.array([[0.0], [1.0], [2.0], [3.0]])
    assert metrics.monotone_fraction(rising, [1]) == 1.0
    assert metrics.monotone_fraction(rising, [-1]) == 0.0
    assert metrics.monotone_fraction(rising[::-1], [-1]) == 1.0
    zigzag = np.array([[0.0], [2.0], [1.0], [3.0]])  # steps +2, -1, +2
    assert metrics.monotone_fraction(zigzag, [1]) == pytest.approx(2 / 3)
    # two columns pooled: 3 good steps of the first, 2 of 3 of the second
    assert metrics.monotone_fraction(np.hstack([rising, zigzag]), [1, 1]) == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match="non-zero"):
        metrics.monotone_fraction(rising, [0])


def test_time_correlation():
    rising = np.array([[0.0], [0.5], [0.7], [3.0]])  # monotone, not linear: Spearman is still 1
    assert metrics.time_correlation(rising, [1]) == pytest.approx(1.0)
    assert metrics.time_correlation(rising, [-1]) == pytest.approx(-1.0)
    assert metrics.time_correlation(np.ones((4, 1)), [1]) == 0.0
    # ranks 1, 3, 2, 4 against 1, 2, 3, 4: rho = 1 - 6 * (0 + 1 + 1 + 0) / (4 * 15) = 0.8
    assert metrics.time_correlation(np.array([[0.0], [2.0], [1.0], [3.0]]), [1]) == pytest.approx(0.8)


def test_max_over_mean_change():
    levels = np.array([0, 10, 20, 30], np.uint8)
    even = np.broadcast_to(levels[:, None, None, None], (4, 2, 2, 3))
    assert metrics.max_over_mean_change(even) == pytest.approx(1.0)
    jumpy = np.broadcast_to(np.array([0, 1, 2, 3, 7], np.uint8)[:, None, None, None], (5, 2, 2, 3))
    assert metrics.max_over_mean_change(jumpy) == pytest.approx(4 / (7 / 4))  # steps 1, 1, 1, 4
    assert metrics.max_over_mean_change(np.zeros((3, 2, 2, 3), np.uint8)) == 1.0


def test_sharpness_ratio_of_a_blurred_face_is_below_one_and_of_itself_one():
    face, _ = render_face(sample_identity(np.random.default_rng(3)), np.zeros(17), 64)
    blurred = np.clip(ndimage.gaussian_filter(face.astype(np.float64), (1.0, 1.0, 0)), 0, 255).round().astype(np.uint8)
    assert metrics.sharpness_ratio(face, face) == 1.0
    assert metrics.sharpness_ratio(face, blurred) < 0.5
    more_blurred = ndimage.gaussian_filter(face.astype(np.float64), (2.0, 2.0, 0)).round().astype(np.uint8)
    assert metrics.sharpness_ratio(face, more_blurred) < metrics.sharpness_ratio(face, blurred)
    noisy = np.clip(face + np.random.default_rng(0).normal(0, 8, face.shape), 0, 255).astype(np.uint8)
    assert metrics.sharpness_ratio(face, noisy) > 1


def test_laplacian_energy_by_hand_and_in_a_region():
    image = np.zeros((5, 5, 3), np.uint8)
    image[2, 2] = 100  # grey 100: Laplacian -400 at the centre, +100 at its 4 neighbours
    assert metrics.laplacian_energy(image) == pytest.approx((400**2 + 4 * 100**2) / 25)
    where = np.zeros((5, 5), bool)
    where[2, 2] = True
    assert metrics.laplacian_energy(image, where) == pytest.approx(400**2)
    flat = np.full((5, 5, 3), 7, np.uint8)
    assert metrics.sharpness_ratio(flat, flat) == 1.0


def test_landmark_error_is_the_mean_distance_over_the_eye_distance():
    _, points = render_face(sample_identity(np.random.default_rng(4)), np.zeros(17), 64)
    assert metrics.landmark_error(points, points) == 0
    shifted = points + np.array([3.0, 4.0])  # every point 5 px away
    assert metrics.landmark_error(shifted, points) == pytest.approx(5 / metrics.interocular_distance(points))
    with pytest.raises(ValueError, match="68"):
        metrics.landmark_error(points[:66], points)
