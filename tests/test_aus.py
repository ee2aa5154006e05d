"""AU names, expression presets, assignments, OpenFace CSVs and GANimation's aus_openface.pkl."""
import io
import os
import pickle
import pickletools

import numpy as np
import pytest

from ganbatch.targets.aus import (
    AU_IDS,
    AU_NAMES,
    EXPRESSIONS,
    FACS_NAMES,
    NUM_AUS,
    AUError,
    UnsafePickleError,
    apply_aus,
    au_index,
    expression_aus,
    parse_au_assignments,
    read_aus_pkl,
    read_openface_csv,
    write_aus_pkl,
    write_openface_csv,
)

# Positions counted by hand in (1, 2, 4, 5, 6, 7, 9, 10, 12, ...): AU6 is the 5th entry, AU12 the 9th.
AU6, AU12 = 4, 8


def active(vector):
    return {AU_IDS[i] for i in np.flatnonzero(vector)}


# ---------------------------------------------------------------------------------------------------- names


@pytest.mark.parametrize("spelling", ["AU12", "au12", "AU12_r", " AU12_r", "12", "AU012", 12])
def test_au_index_accepts_the_usual_spellings(spelling):
    assert au_index(spelling) == AU12


def test_au_index_of_padded_openface_names():
    assert [au_index(f"AU{i:02d}_r") for i in AU_IDS] == list(range(NUM_AUS))


def test_unknown_au_lists_known_ones_and_suggests():
    with pytest.raises(AUError) as error:
        au_index("AU122")
    message = str(error.value)
    assert "AU122" in message and "AU45" in message and "did you mean" in message and "AU12" in message
    with pytest.raises(AUError, match="unknown action unit 'smile'"):
        au_index("smile")


def test_every_au_has_a_facs_name():
    assert set(FACS_NAMES) == set(AU_IDS) and len(AU_NAMES) == NUM_AUS == 17


# ---------------------------------------------------------------------------------------------------- expressions

# The EMFACS prototype AUs each preset must use (Ekman & Friesen), written out here independently of the module.
FACS_PROTOTYPES = {
    "neutral": set(),
    "happy": {6, 12},
    "surprise": {1, 2, 5, 26},
    "anger": {4, 5, 7, 23},
    "blink": {45},
}
FACS_CORE = {"sad": {1, 4, 15}, "fear": {1, 2, 4, 5, 20, 26}, "disgust": {9, 15}, "contempt": {12, 14}}


def test_required_presets_exist():
    assert set(FACS_PROTOTYPES) | set(FACS_CORE) <= set(EXPRESSIONS)


@pytest.mark.parametrize("name", sorted(FACS_PROTOTYPES))
def test_presets_use_exactly_their_facs_aus(name):
    assert active(expression_aus(name)) == FACS_PROTOTYPES[name]


@pytest.mark.parametrize("name", sorted(FACS_CORE))
def test_presets_contain_their_core_facs_aus(name):
    assert FACS_CORE[name] <= active(expression_aus(name))


@pytest.mark.parametrize("name", sorted(EXPRESSIONS))
def test_intensity_scales_and_clips(name):
    full = expression_aus(name)
    assert full.dtype == np.float32 and full.shape == (NUM_AUS,)
    np.testing.assert_allclose(expression_aus(name, 0.5), full * 0.5, rtol=1e-6)
    np.testing.assert_array_equal(expression_aus(name, 0.0), np.zeros(NUM_AUS))
    strong = expression_aus(name, 10.0)
    assert strong.max() <= 5.0 and np.all(strong >= full)


def test_happy_at_full_strength_matches_its_definition():
    happy = expression_aus("happy")
    assert happy[AU6] == EXPRESSIONS["happy"]["AU6"] and happy[AU12] == EXPRESSIONS["happy"]["AU12"]


def test_unknown_expression_and_bad_intensity():
    with pytest.raises(AUError, match="did you mean happy"):
        expression_aus("hapy")
    with pytest.raises(AUError, match="intensity"):
        expression_aus("happy", -1)


# ---------------------------------------------------------------------------------------------------- assignments


def test_parse_au_assignments():
    assert parse_au_assignments(["AU12=3.5", "AU6=2"]) == {AU12: 3.5, AU6: 2.0}
    assert parse_au_assignments("au12_r=1, 6=0") == {AU12: 1.0, AU6: 0.0}


@pytest.mark.parametrize(
    "item, message",
    [("AU12", "NAME=VALUE"), ("AU12=big", "not a number"), ("AU12=6", "0..5"), ("AU13=1", "unknown action unit")],
)
def test_parse_au_assignments_errors(item, message):
    with pytest.raises(AUError, match=message):
        parse_au_assignments([item])


def test_apply_aus_sets_values_on_a_copy():
    base = expression_aus("happy")
    result = apply_aus(base, {AU12: 1.0, "AU25": 2.5})
    assert result[AU12] == 1.0 and result[au_index("AU25")] == 2.5 and result[AU6] == base[AU6]
    assert base[AU12] == EXPRESSIONS["happy"]["AU12"]
    with pytest.raises(AUError, match="0..5"):
        apply_aus(base, {AU12: 7})
    with pytest.raises(AUError, match="17 AU intensities"):
        apply_aus(np.zeros(16), {})


# ---------------------------------------------------------------------------------------------------- OpenFace CSV

GAZE = ["gaze_0_x", "gaze_0_y", "gaze_0_z"]
OCCURRENCE = [f"AU{i:02d}_c" for i in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 28, 45)]


def openface_text(leading, au_ids, rows, pad=True, separator=", "):
    """An OpenFace-style CSV: `leading` columns, gaze, the AU intensities of `au_ids` (in that order), `_c` columns.

    `rows` are (leading values, {au id: intensity}).
    """
    intensity = [f"AU{i:02d}_r" if pad else f"AU{i}_r" for i in au_ids]
    lines = [separator.join(leading + GAZE + intensity + OCCURRENCE)]
    for values, aus in rows:
        cells = [str(v) for v in values] + ["0.1", "-0.2", "-0.9"] + [str(aus[i]) for i in au_ids]
        cells += ["1"] * len(OCCURRENCE)
        lines.append(separator.join(cells))
    return "\n".join(lines) + "\n"


def intensities(seed):
    return {au: round((seed * 7 + k * 3) % 50 / 10, 2) for k, au in enumerate(AU_IDS)}


def expected_row(aus):
    return np.array([aus[i] for i in AU_IDS], dtype=np.float32)


def test_read_face_landmark_img_csv(tmp_path):
    rows = [((0, 0.98), intensities(1)), ((1, 0.75), intensities(2))]
    path = tmp_path / "face.csv"
    path.write_text(openface_text(["face", "confidence"], list(reversed(AU_IDS)), rows))
    table = read_openface_csv(path)
    assert table.aus.dtype == np.float32 and table.aus.shape == (2, NUM_AUS) and len(table) == 2
    np.testing.assert_array_equal(table.aus, [expected_row(aus) for _, aus in rows])
    np.testing.assert_array_equal(table.face_id, [0, 1])
    np.testing.assert_allclose(table.confidence, [0.98, 0.75])
    assert table.frame is None and table.success is None and table.names is None


@pytest.mark.parametrize("with_face_id", [True, False])
def test_read_feature_extraction_csv(with_face_id):
    leading = ["frame"] + (["face_id"] if with_face_id else []) + ["timestamp", "confidence", "success"]
    rows = [
        ((1,) + ((0,) if with_face_id else ()) + (0.0, 0.98, 1), intensities(3)),
        ((2,) + ((0,) if with_face_id else ()) + (0.04, 0.0, 0), intensities(4)),
    ]
    table = read_openface_csv(io.StringIO(openface_text(leading, AU_IDS, rows, pad=False)))
    np.testing.assert_array_equal(table.aus, [expected_row(aus) for _, aus in rows])
    np.testing.assert_array_equal(table.frame, [1, 2])
    np.testing.assert_allclose(table.timestamp, [0.0, 0.04])
    np.testing.assert_array_equal(table.success, [True, False])
    assert (table.face_id is not None) == with_face_id


def test_read_csv_without_spaces_and_padded_names():
    text = openface_text(["face", "confidence"], AU_IDS, [((0, 1.0), intensities(5))], separator=",")
    np.testing.assert_array_equal(read_openface_csv(io.StringIO(text)).aus[0], expected_row(intensities(5)))


def test_missing_au_columns_are_named(tmp_path):
    path = tmp_path / "partial.csv"
    kept = [i for i in AU_IDS if i not in (12, 45)]
    path.write_text(openface_text(["face", "confidence"], kept, [((0, 1.0), intensities(1))]))
    with pytest.raises(AUError) as error:
        read_openface_csv(path)
    assert "partial.csv" in str(error.value) and "AU12_r" in str(error.value) and "AU45_r" in str(error.value)
    assert "AU06_r" not in str(error.value)


def test_bad_cells_and_ragged_rows_are_located():
    text = openface_text(["face", "confidence"], AU_IDS, [((0, 1.0), intensities(1))])
    header, row = text.splitlines()
    cells = row.split(", ")
    cells[header.split(", ").index("AU01_r")] = "x"
    with pytest.raises(AUError, match=r"line 2, column 'AU01_r': 'x' is not a number"):
        read_openface_csv(io.StringIO(header + "\n" + ", ".join(cells) + "\n"))
    with pytest.raises(AUError, match="line 2 has"):
        read_openface_csv(io.StringIO(header + "\n" + row + ", 1\n"))


def test_write_then_read_openface_csv(tmp_path):
    aus = np.stack([expression_aus("happy"), np.random.default_rng(0).uniform(0, 5, NUM_AUS)])
    path = tmp_path / "targets.csv"
    write_openface_csv(path, ["img_a", "img_b"], aus)
    assert path.read_text().startswith("name, face, confidence, AU01_r, AU02_r, AU04_r")
    table = read_openface_csv(path)
    assert table.names == ("img_a", "img_b")
    np.testing.assert_array_equal(table.aus, aus.astype(np.float32))  # float32 values survive exactly
    buffer = io.StringIO()
    write_openface_csv(buffer, None, aus)
    assert buffer.getvalue().startswith("face, confidence, AU01_r")
    unnamed = read_openface_csv(io.StringIO(buffer.getvalue()))
    assert unnamed.names is None and list(unnamed.face_id) == [0, 1]
    with pytest.raises(AUError, match="commas"):
        write_openface_csv(io.StringIO(), ["a,b", "c"], aus)


# ---------------------------------------------------------------------------------------------------- aus_openface.pkl


def raw_pickle_vectors(data):
    """Decode a GANimation AU pickle by walking its opcodes: each key string followed by a 136-byte data string."""
    vectors, name = {}, None
    for opcode, argument, _ in pickletools.genops(data):
        if opcode.name in ("SHORT_BINSTRING", "BINSTRING", "BINUNICODE"):
            raw = argument.encode("latin1")
            if len(raw) == 8 * NUM_AUS:
                vectors[name] = np.frombuffer(raw, dtype="<f8")
            elif len(raw) > 2:
                name = argument
    return vectors


def pickle_globals(data):
    return {argument for opcode, argument, _ in pickletools.genops(data) if opcode.name == "GLOBAL"}


def test_reads_the_real_ganimation_pickle(shared_fixtures):
    folder = shared_fixtures / "ganimation_sample_dataset"
    data = (folder / "aus_openface.pkl").read_bytes()
    assert data[:2] == b"\x80\x02"  # protocol 2, as Python 2 wrote it
    loaded = read_aus_pkl(folder / "aus_openface.pkl")
    assert set(loaded) == {path.stem for path in (folder / "imgs").glob("*.jpg")}
    expected = raw_pickle_vectors(data)
    assert set(expected) == set(loaded) and len(loaded) == 4
    for name, vector in loaded.items():
        assert vector.dtype == np.float64 and vector.shape == (NUM_AUS,)
        assert vector.min() >= 0 and vector.max() <= 5
        np.testing.assert_array_equal(vector, expected[name])


def test_pickle_round_trip_in_the_original_format(tmp_path, shared_fixtures):
    original = read_aus_pkl((shared_fixtures / "ganimation_sample_dataset" / "aus_openface.pkl").read_bytes())
    path = tmp_path / "aus_openface.pkl"
    write_aus_pkl(path, original)
    data = path.read_bytes()
    assert data[:2] == b"\x80\x02"
    real = (shared_fixtures / "ganimation_sample_dataset" / "aus_openface.pkl").read_bytes()
    assert pickle_globals(data) == pickle_globals(real) == {
        "numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}
    for reread in (read_aus_pkl(path), read_aus_pkl(io.BytesIO(data)), pickle.loads(data, encoding="latin1")):
        assert set(reread) == set(original)
        for name in original:
            np.testing.assert_array_equal(reread[name], original[name])
            assert reread[name].dtype == np.float64


def test_write_aus_pkl_accepts_float32_vectors_and_rejects_bad_shapes():
    buffer = io.BytesIO()
    write_aus_pkl(buffer, {"face_é": expression_aus("happy")})
    assert read_aus_pkl(buffer.getvalue())["face_é"][AU12] == EXPRESSIONS["happy"]["AU12"]
    with pytest.raises(AUError, match="shape"):
        write_aus_pkl(io.BytesIO(), {"a": np.zeros(3)})


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_reads_python3_numpy2_pickles(protocol):
    vector = np.linspace(0, 5, NUM_AUS)
    loaded = read_aus_pkl(pickle.dumps({"a": vector}, protocol=protocol))
    np.testing.assert_array_equal(loaded["a"], vector)


class _RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_refuses_a_malicious_pickle_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"a": _RunsACommand(marker)}, protocol=2)
    with pytest.raises(UnsafePickleError, match="system"):
        read_aus_pkl(payload)
    assert not marker.exists()


def test_refuses_codecs_other_than_latin1():
    # what Python 3 emits for bytes under protocol 2, but asking for another codec
    payload = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R."
    with pytest.raises(UnsafePickleError, match="rot13"):
        read_aus_pkl(payload)


@pytest.mark.parametrize(
    "payload, message",
    [
        (pickle.dumps([1, 2], protocol=2), "expected a dict"),
        (pickle.dumps({"a": np.zeros(3)}, protocol=2), "'a' holds"),
        (b"\x80\x02}q\x00(U", "not a readable AU pickle"),
    ],
)
def test_rejects_pickles_that_are_not_au_tables(payload, message):
    with pytest.raises(AUError, match=message):
        read_aus_pkl(payload)
