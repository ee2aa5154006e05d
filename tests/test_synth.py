"""The procedural face renderer and the synthetic data set writer (ganbatch.synth)."""
import dataclasses
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter
from scipy.spatial import ConvexHull

from ganbatch.jobs import SynthJob
from ganbatch.synth import (
    ExpressionMix,
    Identity,
    Shading,
    face_geometry,
    face_landmarks,
    read_identities,
    render_face,
    render_face_from_landmarks,
    sample_expression_aus,
    sample_identities,
    sample_identity,
    write_dataset,
)
from ganbatch.synth.face import MOUTH_INTERIOR
from ganbatch.targets.aus import AU_IDS, EXPRESSIONS, AUError, NUM_AUS, read_aus_pkl, read_openface_csv
from ganbatch.targets.landmarks import IBUG_FLIP, read_landmarks

SIZE = 128
LUMINANCE = np.array([0.299, 0.587, 0.114])
IDENTITIES = sample_identities(3, seed=11)


def single_au(au, intensity):
    aus = np.zeros(NUM_AUS)
    aus[AU_IDS.index(au)] = intensity
    return aus


def hull_mask(point_sets, size, grow):
    """Union of the convex hulls of `point_sets`, dilated by `grow` pixels, as a boolean (size, size) mask."""
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    for points in point_sets:
        hull = points[ConvexHull(points).vertices]
        draw.polygon(hull.ravel().tolist(), fill=255)
    return np.asarray(mask.filter(ImageFilter.MaxFilter(2 * grow + 1))) > 0


RIGHT_EYE, LEFT_EYE = list(range(36, 42)), list(range(42, 48))
RIGHT_BROW, LEFT_BROW = list(range(17, 22)), list(range(22, 27))
MOUTH = list(range(48, 68))
NOSE = list(range(27, 36))


def au_region(au, neutral, active):
    """Where FACS says `au` acts, from the landmarks of the neutral and the fully active face."""
    both = np.vstack([neutral, active])

    def points(indices):
        return both[np.r_[indices, np.array(indices) + 68]]

    up = (neutral[27] - neutral[8]) / np.linalg.norm(neutral[27] - neutral[8])
    face_height = np.linalg.norm(neutral[27] - neutral[8])
    if au in (1, 2, 4):  # brows and forehead
        brows = points(RIGHT_BROW + LEFT_BROW + [27])
        return hull_mask([np.vstack([brows, brows + up * 0.3 * face_height])], SIZE, 3)
    if au in (5, 7, 45):  # eyes and their lids, up to the brows
        return hull_mask([points(RIGHT_EYE + RIGHT_BROW), points(LEFT_EYE + LEFT_BROW)], SIZE, 3)
    if au == 6:  # eyes and cheeks
        return hull_mask([points(RIGHT_EYE + [0, 1, 2, 3, 31, 48]), points(LEFT_EYE + [16, 15, 14, 13, 35, 54])],
                         SIZE, 3)
    if au in (9, 10):  # nose and upper lip
        return hull_mask([points(NOSE + MOUTH + [39, 42])], SIZE, 5)
    if au == 12:  # the face below the lower lids
        return hull_mask([points(list(range(1, 16)) + [40, 41, 46, 47] + NOSE[4:] + MOUTH)], SIZE, 3)
    if au in (14, 15, 20, 23, 25):  # mouth
        return hull_mask([points(NOSE[4:] + MOUTH)], SIZE, 5)
    return hull_mask([points(MOUTH + list(range(4, 13)))], SIZE, 3)  # 17, 26: mouth and chin


def change(image, reference):
    return np.abs(image.astype(np.int32) - reference.astype(np.int32)).sum(axis=2)


def test_sampling_and_rendering_are_deterministic():
    assert sample_identity(5) == sample_identity(5)
    assert sample_identity(5) != sample_identity(6)
    assert sample_identities(2, seed=11) == IDENTITIES[:2]  # identity i depends on (seed, i) only
    aus = single_au(12, 3.3) + single_au(26, 2.0)
    first_image, first_points = render_face(IDENTITIES[0], aus, SIZE)
    second_image, second_points = render_face(IDENTITIES[0], aus, SIZE)
    assert first_image.shape == (SIZE, SIZE, 3) and first_image.dtype == np.uint8
    assert first_points.shape == (68, 2) and first_points.dtype == np.float32
    assert first_image.flags.writeable
    np.testing.assert_array_equal(first_image, second_image)
    np.testing.assert_array_equal(first_points, second_points)
    assert not np.array_equal(first_image, render_face(IDENTITIES[1], aus, SIZE)[0])


@pytest.mark.parametrize("au", AU_IDS)
def test_each_au_changes_its_own_region_monotonically(au):
    for identity in IDENTITIES:
        neutral_image, neutral_points = render_face(identity, np.zeros(NUM_AUS), SIZE)
        changes = []
        for intensity in (1, 2, 3, 4, 5):
            image, points = render_face(identity, single_au(au, intensity), SIZE)
            changes.append(change(image, neutral_image))
        totals = [c.sum() for c in changes]
        assert all(b > a for a, b in zip(totals, totals[1:])), f"AU{au}: change not monotone: {totals}"
        region = au_region(au, neutral_points, points)
        inside = changes[-1][region].sum() / totals[-1]
        assert inside >= 0.8, f"AU{au}: only {inside:.2f} of the change lies in its region"


def test_landmarks_follow_the_action_units():
    identity = IDENTITIES[0]
    neutral = face_landmarks(identity, np.zeros(NUM_AUS), SIZE)
    smile = face_landmarks(identity, single_au(12, 5), SIZE)
    assert smile[48, 1] < neutral[48, 1] - 3 and smile[54, 1] < neutral[54, 1] - 3  # corners up
    assert np.linalg.norm(smile[54] - smile[48]) > np.linalg.norm(neutral[54] - neutral[48])  # and apart
    frown = face_landmarks(identity, single_au(15, 5), SIZE)
    assert frown[48, 1] > neutral[48, 1] + 2 and frown[54, 1] > neutral[54, 1] + 2
    heights = [np.linalg.norm(face_landmarks(identity, single_au(45, i), SIZE)[37] -
                              face_landmarks(identity, single_au(45, i), SIZE)[41]) for i in range(6)]
    assert all(b < a for a, b in zip(heights, heights[1:])) and heights[-1] < 0.5
    chin = [face_landmarks(identity, single_au(26, i), SIZE)[8, 1] for i in range(6)]
    assert all(b > a for a, b in zip(chin, chin[1:]))
    brows = face_landmarks(identity, single_au(1, 5), SIZE)
    assert brows[21, 1] < neutral[21, 1] - 3 and brows[22, 1] < neutral[22, 1] - 3
    lowered = face_landmarks(identity, single_au(4, 5), SIZE)
    assert lowered[22, 0] - lowered[21, 0] < neutral[22, 0] - neutral[21, 0]  # brows drawn together


def test_landmarks_use_ibug_order_and_mirror_with_ibug_flip():
    identity = dataclasses.replace(IDENTITIES[1], roll_degrees=0.0, shift_x=0.0)
    aus = sample_expression_aus(np.random.default_rng(3))
    points = face_landmarks(identity, aus, SIZE)
    assert points[36, 0] < points[39, 0] < points[42, 0] < points[45, 0]  # subject's right eye on the image left
    assert points[0, 0] < points[8, 0] < points[16, 0] and points[8, 1] == points[0:17, 1].max()
    assert points[17, 1] < points[36, 1] < points[30, 1] < points[51, 1] < points[57, 1] < points[8, 1]
    mirrored = points[IBUG_FLIP].copy()
    mirrored[:, 0] = SIZE - 1 - mirrored[:, 0]
    np.testing.assert_allclose(mirrored, points, atol=1e-3)


def test_landmarks_land_on_the_drawn_features():
    identity = IDENTITIES[2]
    image, points = render_face(identity, np.zeros(NUM_AUS), SIZE)
    skin = np.array(identity.skin, dtype=float)

    def pixel(point):
        return image[int(round(point[1])), int(round(point[0]))].astype(float)

    for eye in (points[36:42], points[42:48]):  # the iris sits between the eye corners
        assert np.abs(pixel((eye[0] + eye[3]) / 2) - skin).sum() > 80
    closed_image, closed = render_face(identity, single_au(45, 5), SIZE)
    for eye in (closed[36:42], closed[42:48]):  # a closed eye shows lid skin a few pixels above the lash line
        above = (eye[1] + eye[2]) / 2 - np.array([0.0, 4.0])
        assert np.abs(closed_image[int(round(above[1])), int(round(above[0]))] - skin).sum() < 90

    neutral = image.astype(float)
    for aus in (single_au(25, 5), single_au(26, 5), single_au(25, 3) + single_au(26, 3)):
        open_image, points = render_face(identity, aus, SIZE)
        x, y = np.round((points[62] + points[66]) / 2).astype(int)
        np.testing.assert_array_equal(open_image[y, x], MOUTH_INTERIOR)  # between the inner lips: the mouth
        assert (neutral[y, x] - open_image[y, x]) @ LUMINANCE > 20  # which is darker than the closed lips


def test_rendering_from_landmarks_matches_rendering_from_aus():
    identity = IDENTITIES[0]
    aus = single_au(6, 4) + single_au(12, 5) + single_au(25, 2)
    image, _ = render_face(identity, aus, SIZE)
    geometry = face_geometry(identity, aus, SIZE)
    np.testing.assert_array_equal(render_face_from_landmarks(identity, geometry.landmarks, SIZE, geometry.shading),
                                  image)
    without_shading = render_face_from_landmarks(identity, geometry.landmarks, SIZE)
    difference = change(without_shading, image) / 3
    assert 0 < difference.mean() < 2.0  # the shading only adds wrinkles and bulges


def test_rendering_follows_any_landmark_set():
    identity = IDENTITIES[1]
    points = face_landmarks(identity, np.zeros(NUM_AUS), SIZE)
    image = render_face_from_landmarks(identity, points, SIZE)
    moved = render_face_from_landmarks(identity, points + (6.0, 0.0), SIZE)
    face = hull_mask([points[:27]], SIZE, 0)
    inner = face & np.roll(face, 6, axis=1)
    assert change(np.roll(image, 6, axis=1), moved)[inner].mean() < 6  # everything on the face moved along
    assert change(image, moved)[inner].mean() > 10
    # another identity's smile makes this identity smile
    smile = face_landmarks(IDENTITIES[2], single_au(12, 5), SIZE)
    posed = render_face_from_landmarks(identity, smile, SIZE)
    assert posed.shape == (SIZE, SIZE, 3)
    assert change(posed, image)[hull_mask([smile[48:68], points[48:68]], SIZE, 2)].mean() > 10


def test_bad_inputs_name_the_field():
    identity = IDENTITIES[0]
    with pytest.raises(AUError, match="aus"):
        render_face(identity, np.zeros(5))
    with pytest.raises(AUError, match="aus"):
        render_face(identity, np.full(NUM_AUS, 7.0))
    with pytest.raises(ValueError, match="landmarks"):
        render_face_from_landmarks(identity, np.zeros((66, 2)))
    with pytest.raises(ValueError, match="landmarks"):
        render_face_from_landmarks(identity, np.full((68, 2), 10.0))
    fields = dataclasses.asdict(identity)
    del fields["skin"]
    with pytest.raises(ValueError, match="skin"):
        Identity.from_dict(fields)
    with pytest.raises(ValueError, match="hair_style"):
        Identity.from_dict({**dataclasses.asdict(identity), "hair_style": "mohawk"})


def test_expression_sampler_covers_every_au():
    rng = np.random.default_rng(0)
    samples = np.array([sample_expression_aus(rng) for _ in range(3000)])
    assert samples.min() >= 0 and samples.max() <= 5
    np.testing.assert_array_equal(samples, np.round(samples, 2))
    assert 0.1 < np.mean(samples.sum(axis=1) == 0) < 0.2  # neutral share
    for column, au in enumerate(AU_IDS):
        values = samples[:, column]
        assert values.max() > 4.5, f"AU{au} never strong"
        assert 0.05 < np.mean(values > 0) < 0.6, f"AU{au} active in {np.mean(values > 0):.2f} of the samples"
        assert np.mean((values > 0) & (values < 2)) > 0.01, f"AU{au} never weak"


PROTOTYPE_AUS = [{AU_IDS.index(int(au[2:])) for au in EXPRESSIONS[name]} for name in EXPRESSIONS if name != "neutral"]


def test_expression_mix_weights_the_three_kinds_of_draw():
    def shares(mix, count=4000):
        """The shares of neutral draws, of prototype-shaped draws and of draws showing AU25."""
        rng = np.random.default_rng(1)
        active = [set(np.flatnonzero(sample_expression_aus(rng, mix))) for _ in range(count)]
        return (np.mean([not aus for aus in active]), np.mean([aus in PROTOTYPE_AUS for aus in active]),
                np.mean([AU_IDS.index(25) in aus for aus in active]))

    default_neutral, default_prototypes, default_au25 = shares(ExpressionMix())
    assert 0.13 < default_neutral < 0.17 and 0.43 < default_prototypes < 0.49
    neutral, prototypes, au25 = shares(ExpressionMix(neutral=0.1, prototypes=0.3, sparse=0.6))
    assert 0.08 < neutral < 0.12 and 0.28 < prototypes < 0.34 and au25 > 1.3 * default_au25  # AU25: sparse only
    assert shares(ExpressionMix(neutral=1, prototypes=0, sparse=0), 200) == (1.0, 0.0, 0.0)
    only_sparse = shares(ExpressionMix(neutral=0, prototypes=0, sparse=2), 500)
    assert only_sparse[0] == 0 and only_sparse[1] < 0.05  # weights are relative: 2 is all of them
    quarter_neutral, quarter_prototypes, _ = shares(ExpressionMix(neutral=2, prototypes=2, sparse=4))
    assert 0.22 < quarter_neutral < 0.28 and 0.22 < quarter_prototypes < 0.28
    for weights in ((-0.1, 0.5, 0.6), (0, 0, 0), (float("nan"), 1, 1)):
        with pytest.raises(ValueError, match="expression mix"):
            ExpressionMix(*weights)
    assert SynthJob(out="x").expression_mix() == ExpressionMix()  # the job's defaults are the sampler's


def test_the_default_mix_keeps_the_thresholds_data_sets_were_drawn_with():
    # each draw's first uniform number picks the kind: below 0.15 neutral, below 0.60 a prototype, else sparse
    rng = np.random.default_rng(8)
    kinds = set()
    for _ in range(300):
        first = np.random.default_rng()
        first.bit_generator.state = rng.bit_generator.state
        draw = first.random()
        active = set(np.flatnonzero(sample_expression_aus(rng)))
        if draw < 0.15:
            kinds.add("neutral")
            assert not active
        elif draw < 0.60:
            kinds.add("prototype")
            assert active in PROTOTYPE_AUS
        else:
            kinds.add("sparse")
            assert 1 <= len(active) <= 4
    assert kinds == {"neutral", "prototype", "sparse"}


def test_written_dataset_loads_with_the_target_readers(tmp_path, shared_fixtures):
    size, per_identity = 64, 3
    summary = write_dataset(tmp_path, 5, per_identity, size=size, seed=4)
    assert summary.images == 15 and summary.train_images + summary.test_images == 15
    assert not set(summary.train_identities) & set(summary.test_identities) and summary.test_identities

    train = (tmp_path / "train_ids.csv").read_text().split()
    test = (tmp_path / "test_ids.csv").read_text().split()
    assert len(train) == summary.train_images and len(test) == summary.test_images
    assert not {name.split("_")[0] for name in train} & {name.split("_")[0] for name in test}
    conditions = read_aus_pkl(tmp_path / "aus_openface.pkl")
    # GANimation's reader strips '.jpg' from the ids files and looks the rest up in the pickle, as for the originals
    original = shared_fixtures / "ganimation_sample_dataset"
    original_ids = (original / "train_ids.csv").read_text().split()
    assert all(name[:-4] in read_aus_pkl(original / "aus_openface.pkl") for name in original_ids)
    assert sorted(name[:-4] for name in train + test) == sorted(conditions)

    table = read_openface_csv(tmp_path / "aus_openface.csv")
    identities = read_identities(tmp_path / "identities.json")
    assert list(identities) == [f"id{i:04d}" for i in range(5)]
    for row, name in enumerate(table.names):
        np.testing.assert_allclose(table.aus[row], conditions[name], atol=1e-6)
        points = read_landmarks(tmp_path / "landmarks" / f"{name}.txt")
        assert points.shape == (1, 68, 2)
        identity = identities[name.split("_")[0]]
        expected_image, expected_points = render_face(identity, conditions[name], size)
        np.testing.assert_allclose(points[0], expected_points, atol=1e-3)
        image = np.asarray(Image.open(tmp_path / "imgs" / f"{name}.jpg").convert("RGB"))
        assert image.shape == (size, size, 3)
        assert change(image, expected_image).mean() / 3 < 4  # JPEG quality 95 of the same render
    sheet = Image.open(tmp_path / "contact_sheet.png")
    assert sheet.width == 9 * size and sheet.height > 5 * size
    json.loads((tmp_path / "identities.json").read_text())


def test_write_dataset_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="layouts"):
        write_dataset(tmp_path, 2, 1, layouts=("ganimation", "coco"))
    with pytest.raises(ValueError, match="test_fraction"):
        write_dataset(tmp_path, 2, 1, test_fraction=1.0)
    with pytest.raises(ValueError, match="per_identity"):
        write_dataset(tmp_path, 2, 0)


def test_shading_is_neutral_by_default():
    assert face_geometry(IDENTITIES[0], np.zeros(NUM_AUS), SIZE).shading == Shading()
