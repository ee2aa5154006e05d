"""Training data: the layouts, their errors, the S3 cache, and deterministic, shard-independent batches."""
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from ganbatch.io import storage
from ganbatch.families import get_family
from ganbatch.synth.dataset import write_dataset
from ganbatch.targets.aus import read_aus_pkl, write_openface_csv
from ganbatch.targets.landmarks import flip_landmarks, read_landmarks, to_gannotation66
from ganbatch.train.batches import BatchMaker
from ganbatch.train.data import DataError, find_training_data, identity_of, local_images_root


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """4 identities x 4 images at 64 px in every layout (read-only for the tests: copy before changing it)."""
    root = tmp_path_factory.mktemp("synthetic")
    write_dataset(root, 4, 4, size=64, seed=3, contact_sheet=False)
    return root


def _copy(synthetic, tmp_path):
    target = tmp_path / "data"
    shutil.copytree(synthetic, target)
    return target


def test_reads_the_published_sample_dataset_as_it_is(shared_fixtures):
    root = shared_fixtures / "ganimation_sample_dataset"
    data = find_training_data(str(root), "ganimation")
    listed = [line.strip()[:-4] for line in (root / "train_ids.csv").read_text().splitlines() if line.strip()]
    assert data.names == tuple(listed) and data.images == tuple(f"imgs/{n}.jpg" for n in listed)
    pickle = read_aus_pkl(root / "aus_openface.pkl")
    assert np.allclose(data.aus, np.stack([pickle[n] for n in listed]))


def test_ganimation_layout_uses_train_ids_and_the_pickle(synthetic):
    data = find_training_data(str(synthetic), "ganimation")
    listed = [line.strip()[:-4] for line in (synthetic / "train_ids.csv").read_text().splitlines() if line.strip()]
    assert data.names == tuple(listed) and data.layout == "GANimation"
    assert data.identities == tuple(name.split("_")[0] for name in listed)
    assert np.allclose(data.aus, np.stack([read_aus_pkl(synthetic / "aus_openface.pkl")[n] for n in listed]))


def test_openface_csv_layouts(synthetic, tmp_path):
    root = _copy(synthetic, tmp_path)
    (root / "aus_openface.pkl").unlink()
    expected = find_training_data(str(synthetic), "ganimation")
    from_csv = find_training_data(str(root), "ganimation")
    assert from_csv.label_file == "aus_openface.csv" and from_csv.names == expected.names
    assert np.allclose(from_csv.aus, expected.aus, atol=1e-6)
    # one OpenFace CSV per image in processed/, with two faces: the more confident one is used
    (root / "aus_openface.csv").unlink()
    (root / "processed").mkdir()
    for name, aus in zip(expected.names, expected.aus):
        with open(root / "processed" / f"{name}.csv", "w") as handle:
            write_openface_csv(handle, None, np.stack([np.zeros(17), aus]))
        text = (root / "processed" / f"{name}.csv").read_text().splitlines()
        text[1] = text[1].replace(", 1, ", ", 0.2, ", 1)  # face 0 gets confidence 0.2
        (root / "processed" / f"{name}.csv").write_text("\n".join(text) + "\n")
    per_image = find_training_data(str(root), "ganimation")
    assert per_image.label_file == "processed/*.csv" and np.allclose(per_image.aus, expected.aus, atol=1e-6)


def test_landmark_layout_and_identities(synthetic):
    data = find_training_data(str(synthetic), "gannotation")
    first = data.names[0]
    assert data.landmarks.shape == (len(data), 66, 2)
    assert np.allclose(data.landmarks[0], to_gannotation66(read_landmarks(synthetic / "landmarks" / f"{first}.txt")[0]))
    partners = data.partners()
    assert all(set(data.identities[j] for j in p) == {data.identities[i]} for i, p in enumerate(partners))
    assert identity_of("id0007_003") == "id0007" and identity_of("portrait") == "portrait"


def test_missing_files_and_labels_are_reported_with_counts(synthetic, tmp_path):
    root = _copy(synthetic, tmp_path)
    listed = [line for line in (root / "train_ids.csv").read_text().splitlines() if line.strip()]
    (root / "imgs" / listed[0]).unlink()
    with pytest.raises(DataError, match=rf"1 of {len(listed)} images listed in .*train_ids.csv have no image file: "
                                        rf"{listed[0][:-4]}"):
        find_training_data(str(root), "ganimation")
    (root / "train_ids.csv").unlink()
    (root / "landmarks" / f"{listed[1][:-4]}.txt").unlink()
    with pytest.raises(DataError, match=r"1 of 15 images have no label in landmarks/.*; 1 of 15 labels in "
                                        rf"landmarks/ name no image: {listed[0][:-4]}"):
        find_training_data(str(root), "gannotation")
    for name in ("aus_openface.pkl", "aus_openface.csv"):
        (root / name).unlink()
    with pytest.raises(DataError, match="no AU labels: expected aus_openface.pkl"):
        find_training_data(str(root), "ganimation")


def test_wrong_au_columns_and_landmark_counts_name_the_file(synthetic, tmp_path):
    root = _copy(synthetic, tmp_path)
    (root / "aus_openface.pkl").unlink()
    csv = root / "aus_openface.csv"
    csv.write_text(csv.read_text().replace("AU45_r", "AU46_r"))
    with pytest.raises(DataError, match=r"aus_openface.csv: missing AU intensity columns AU45_r"):
        find_training_data(str(root), "ganimation")
    landmark = sorted((root / "landmarks").iterdir())[0]
    landmark.write_text("1 2 3 4\n")
    with pytest.raises(DataError, match=rf"{landmark.name}: 4 numbers per row"):
        find_training_data(str(root), "gannotation")


def _maker(data, root, family, rank=0, world=1, **options):
    return BatchMaker(data, root, get_family(family), 64, seed=5, global_batch=4, critic_steps=2, rank=rank,
                      world_size=world, **{"jitter": 0.05, **options})


@pytest.mark.parametrize("family", ["ganimation", "gannotation"])
def test_worker_shards_make_up_the_global_batch(synthetic, family):
    data = find_training_data(str(synthetic), family)
    whole = _maker(data, synthetic, family).batch(step=3, critic_iteration=1)
    shards = [_maker(data, synthetic, family, rank=r, world=2).batch(step=3, critic_iteration=1) for r in (0, 1)]
    for name, value in vars(whole).items():
        if value is not None:
            assert torch.equal(value, torch.cat([getattr(s, name) for s in shards])), name
    again = _maker(data, synthetic, family).batch(step=3, critic_iteration=1)  # a restarted worker
    assert torch.equal(again.real, whole.real)
    assert not torch.equal(_maker(data, synthetic, family).batch(step=3, critic_iteration=0).real, whole.real)


def test_ganimation_targets_are_other_images_aus_plus_bounded_noise(synthetic):
    data = find_training_data(str(synthetic), "ganimation")
    maker = _maker(data, synthetic, "ganimation", au_noise=0.1)
    batch = maker.batch(0, 0)
    indices = [maker.sample_index(p) for p in range(4)]
    assert torch.allclose(batch.cond_real, torch.tensor(data.aus[indices] / 5))
    distances = (batch.cond_target[:, None, :] - torch.tensor(data.aus / 5)[None]).abs().amax(-1)
    assert bool((distances.min(dim=1).values <= 0.1 + 1e-6).all())


def _pixels(root, relative):
    """An image file as the batches hold it: float (3, S, S) in [-1, 1] (64 px files need no resizing)."""
    return torch.from_numpy(np.array(Image.open(root / relative).convert("RGB"))).permute(2, 0, 1).float() / 127.5 - 1


def test_ganimation_paired_targets_are_a_partners_exact_aus_and_aligned_image(synthetic):
    data = find_training_data(str(synthetic), "ganimation")
    published = _maker(data, synthetic, "ganimation").batch(2, 1)
    assert published.target is None and published.has_pair is None
    maker = _maker(data, synthetic, "ganimation", jitter=0.0, paired_fraction=1.0)
    unpaired = _maker(data, synthetic, "ganimation", jitter=0.0)
    flips = []
    for step in range(3):
        paired = maker.batch(step, 0)
        assert torch.equal(paired.real, unpaired.batch(step, 0).real)  # the published draws are kept
        assert torch.equal(paired.has_pair, torch.ones(4))  # every training identity has 4 images
        for slot in range(4):
            index = maker.sample_index(step * 2 * 4 + slot)
            partners = [j for j, name in enumerate(data.identities) if name == data.identities[index] and j != index
                        and np.array_equal(data.aus[j] / 5, paired.cond_target[slot].numpy())]
            assert partners  # no noise on a partner's AUs
            flips.append(torch.equal(paired.real[slot], _pixels(synthetic, data.images[index]).flip(-1)))
            expected = [_pixels(synthetic, data.images[j]) for j in partners]
            assert any(torch.equal(paired.target[slot], e.flip(-1) if flips[-1] else e) for e in expected)
    assert any(flips) and not all(flips)  # flipped and unflipped pairs both checked


def test_ganimation_unpaired_samples_keep_the_random_target(synthetic):
    data = find_training_data(str(synthetic), "ganimation")
    published = _maker(data, synthetic, "ganimation").batch(0, 0)
    half = _maker(data, synthetic, "ganimation", paired_fraction=0.5)
    batches = [half.batch(step, 0) for step in range(6)]
    has_pair = torch.cat([b.has_pair for b in batches])
    assert 0 < has_pair.sum() < len(has_pair)
    first = batches[0]
    for slot in np.flatnonzero(first.has_pair.numpy() == 0):
        assert torch.equal(first.cond_target[slot], published.cond_target[slot])
        assert torch.equal(first.target[slot], first.real[slot])


def test_epochs_visit_every_image_once(synthetic):
    data = find_training_data(str(synthetic), "ganimation")
    maker = _maker(data, synthetic, "ganimation")
    assert sorted(maker.sample_index(p) for p in range(len(data))) == list(range(len(data)))


def test_flip_mirrors_image_and_landmarks_together(synthetic):
    data = find_training_data(str(synthetic), "gannotation")
    maker = BatchMaker(data, synthetic, get_family("gannotation"), 64, seed=0, global_batch=1, critic_steps=1)
    image, points = maker.view(0, flip=False, jitter_draws=np.zeros(2))
    flipped_image, flipped_points = maker.view(0, flip=True, jitter_draws=np.zeros(2))
    assert np.array_equal(flipped_image, image[:, ::-1])
    assert np.allclose(flipped_points, flip_landmarks(points, 64))


def test_jitter_shifts_whole_pixels_with_the_landmarks_never_resampling(synthetic):
    data = find_training_data(str(synthetic), "gannotation")
    maker = BatchMaker(data, synthetic, get_family("gannotation"), 64, seed=0, global_batch=1, critic_steps=1,
                       jitter=0.05)
    image, points = maker.view(0, flip=False, jitter_draws=np.zeros(2))
    moved, moved_points = maker.view(0, flip=False, jitter_draws=np.array([1.0, -0.5]))  # 3.2 px right, 1.6 up
    assert np.array_equal(moved[:-2, 3:], image[2:, :-3])  # the same pixels, 3 right and 2 up: none resampled
    assert np.array_equal(moved[:, :3], np.repeat(moved[:, 3:4], 3, axis=1))  # the border is replicated
    assert np.array_equal(moved[-2:], np.repeat(moved[-3:-2], 2, axis=0))
    assert np.allclose(moved_points, points + [3, -2])


@pytest.mark.slow
def test_s3_data_is_indexed_remotely_and_cached_once_per_node(synthetic, s3_bucket, tmp_path, monkeypatch):
    prefix = f"s3://{s3_bucket}/faces"
    for file in synthetic.rglob("*"):
        if file.is_file():
            storage.upload_file(file, storage.join(prefix, file.relative_to(synthetic).as_posix()))
    data = find_training_data(prefix, "ganimation")
    assert data.names == find_training_data(str(synthetic), "ganimation").names
    monkeypatch.setenv("GANBATCH_CACHE", str(tmp_path / "cache"))
    root = local_images_root(data)
    assert all((root / image).read_bytes() == (synthetic / image).read_bytes() for image in data.images)
    (root / data.images[0]).write_bytes(b"cached")
    assert (local_images_root(data) / data.images[0]).read_bytes() == b"cached"  # present files are not fetched
