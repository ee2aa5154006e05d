"""Action units: the 17 OpenFace intensity AUs that GANimation is conditioned on.

An AU vector is a float array of shape (17,) in the order of `AU_IDS`, with OpenFace's intensity scale: 0 (absent)
to 5 (maximum). The generator sees intensity / AU_SCALE. This module names AUs, builds expressions from FACS
prototypes, and reads/writes the two files AU targets come in: OpenFace CSVs and GANimation's `aus_openface.pkl`.
"""
import csv
import difflib
import io
import os
import pickle
import re
import struct
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Mapping, Optional, Sequence, TextIO, Union

import numpy as np

from ganbatch.targets.files import Source, read_source, source_name

# OpenFace 2 intensity outputs (`AUxx_r`), in the order GANimation's aus_openface.pkl stores them.
AU_IDS = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)
AU_NAMES = tuple(f"AU{i}" for i in AU_IDS)
NUM_AUS = len(AU_IDS)
# OpenFace intensities run from 0 (absent) to 5 (maximum); the generator sees intensity / AU_SCALE.
AU_SCALE = 5.0

FACS_NAMES = {
    1: "inner brow raiser",
    2: "outer brow raiser",
    4: "brow lowerer",
    5: "upper lid raiser",
    6: "cheek raiser",
    7: "lid tightener",
    9: "nose wrinkler",
    10: "upper lip raiser",
    12: "lip corner puller",
    14: "dimpler",
    15: "lip corner depressor",
    17: "chin raiser",
    20: "lip stretcher",
    23: "lip tightener",
    25: "lips part",
    26: "jaw drop",
    45: "blink",
}

# Named expressions: AU name -> intensity at full strength (intensity 1.0).
# AU combinations are the prototypes of Ekman & Friesen's EMFACS (as tabulated e.g. in Matsumoto & Ekman,
# "Facial expression analysis", Scholarpedia 2008, and the FACS Investigator's Guide). FACS intensity letters map to
# OpenFace's scale as A=1 (trace), B=2 (slight), C=3 (marked), D=4 (severe), E=5 (maximum); the full-strength
# values below are a clearly visible C-D unless the prototype names a letter (e.g. surprise's 5B).
EXPRESSIONS = {
    "neutral": {},
    # 6 + 12: the Duchenne smile (cheek raiser with lip corner puller).
    "happy": {"AU6": 3.0, "AU12": 4.0},
    # 1 + 4 + 15: raised inner brows drawn together, lip corners down (EMFACS adds 17 in the full prototype).
    "sad": {"AU1": 3.0, "AU4": 2.0, "AU15": 3.0, "AU17": 2.0},
    # 1 + 2 + 5B + 26: brows up, upper lids slightly raised, jaw dropped.
    "surprise": {"AU1": 4.0, "AU2": 4.0, "AU5": 2.0, "AU26": 4.0},
    # 1 + 2 + 4 + 5 + 7 + 20 + 26.
    "fear": {"AU1": 3.0, "AU2": 3.0, "AU4": 2.0, "AU5": 3.0, "AU7": 2.0, "AU20": 3.0, "AU26": 2.0},
    # 4 + 5 + 7 + 23: lowered brows, glaring lids, pressed lips.
    "anger": {"AU4": 4.0, "AU5": 2.0, "AU7": 3.0, "AU23": 3.0},
    # 9 + 15 (+16) with the 10 variant; AU16 (lower lip depressor) is not among OpenFace's intensity AUs.
    "disgust": {"AU9": 3.0, "AU10": 2.0, "AU15": 2.0},
    # R12A + R14A: a unilateral, faint smirk; OpenFace intensities are bilateral, so both sides at a low level.
    "contempt": {"AU12": 2.0, "AU14": 3.0},
    # 45: eyes closed.
    "blink": {"AU45": 5.0},
}

_AU_NAME_PATTERN = re.compile(r"^\s*(?:au)?0*(\d+)(?:_r)?\s*$", re.IGNORECASE)


class AUError(ValueError):
    """An unknown action unit or expression, a bad AU assignment, or an unreadable AU file."""


class UnsafePickleError(AUError):
    """A pickle asked for something other than NumPy's array reconstruction; it was not executed."""


def au_index(name: Union[str, int]) -> int:
    """Position in an AU vector of an AU given as 'AU12', 'au12', 'AU12_r', 'AU01_r', '12' or 12."""
    match = _AU_NAME_PATTERN.match(str(name))
    if match and int(match.group(1)) in AU_IDS:
        return AU_IDS.index(int(match.group(1)))
    wanted = f"AU{int(match.group(1))}" if match else str(name).strip()
    close = difflib.get_close_matches(wanted, AU_NAMES, n=3)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise AUError(f"unknown action unit '{name}'; known: {', '.join(AU_NAMES)}{hint}")


def check_aus(values, what: str = "AU vector") -> np.ndarray:
    """`values` as a float32 (17,) AU vector; an AUError naming `what` if the shape or the range (0-5) is wrong."""
    vector = np.asarray(values, dtype=np.float32)
    if vector.shape != (NUM_AUS,):
        raise AUError(f"{what}: expected {NUM_AUS} AU intensities, got shape {vector.shape}")
    if not np.all(np.isfinite(vector)) or vector.min() < 0 or vector.max() > AU_SCALE:
        raise AUError(f"{what}: AU intensities must lie in 0..{AU_SCALE:g}, got {vector.min():g}..{vector.max():g}")
    return vector


def aus_problem(values) -> Optional[str]:
    """Why an AU vector (17,) is not usable ('AU12 is nan', 'AU4 = 7 lies outside 0..5'), None when it is."""
    vector = np.asarray(values, dtype=np.float64)
    for index, value in enumerate(vector):
        if not np.isfinite(value):
            return f"{AU_NAMES[index]} is {value} (AU intensities must be finite numbers in 0..{AU_SCALE:g})"
        if not 0 <= value <= AU_SCALE:
            return f"{AU_NAMES[index]} = {value:g} lies outside 0..{AU_SCALE:g}"
    return None


def expression_aus(name: str, intensity: float = 1.0) -> np.ndarray:
    """The AU vector (float32, (17,)) of the named expression, scaled by `intensity` and clipped to 0-5."""
    if name not in EXPRESSIONS:
        close = difflib.get_close_matches(name, EXPRESSIONS, n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise AUError(f"unknown expression '{name}'; known: {', '.join(EXPRESSIONS)}{hint}")
    if not np.isfinite(intensity) or intensity < 0:
        raise AUError(f"expression '{name}': intensity must be a number >= 0, got {intensity}")
    vector = np.zeros(NUM_AUS, dtype=np.float32)
    for au, value in EXPRESSIONS[name].items():
        vector[au_index(au)] = value * intensity
    return np.clip(vector, 0.0, AU_SCALE)


def parse_au_assignments(assignments: Union[str, Iterable[str]]) -> dict[int, float]:
    """Parse 'AU12=3.5' items (a list, or one comma-separated string) into {AU vector index: intensity}."""
    items = assignments.split(",") if isinstance(assignments, str) else assignments
    parsed = {}
    for item in items:
        name, sep, value = str(item).partition("=")
        if not sep:
            raise AUError(f"AU assignment '{item}': expected NAME=VALUE, e.g. AU12=3.5")
        try:
            intensity = float(value)
        except ValueError:
            raise AUError(f"AU assignment '{item}': '{value.strip()}' is not a number") from None
        if not 0.0 <= intensity <= AU_SCALE:
            raise AUError(f"AU assignment '{item}': intensity must lie in 0..{AU_SCALE:g}")
        parsed[au_index(name)] = intensity
    return parsed


def apply_aus(base, assignments: Mapping[Union[int, str], float]) -> np.ndarray:
    """A copy of AU vector `base` with some intensities replaced.

    Keys are AU vector indices (as `parse_au_assignments` returns) or AU names ('AU12', 'au12_r', ...).
    """
    vector = check_aus(base, "base AU vector").copy()
    for key, value in assignments.items():
        index = key if isinstance(key, (int, np.integer)) else au_index(key)
        if not 0 <= index < NUM_AUS:
            raise AUError(f"AU index {index} out of range 0..{NUM_AUS - 1}")
        if not 0.0 <= float(value) <= AU_SCALE:
            raise AUError(f"{AU_NAMES[index]}={value}: intensity must lie in 0..{AU_SCALE:g}")
        vector[index] = value
    return vector


# ---------------------------------------------------------------------------------------------------------------
# OpenFace CSV files


@dataclass(frozen=True)
class OpenFaceTable:
    """The AU intensities of an OpenFace CSV, one row per face (FaceLandmarkImg) or frame (FeatureExtraction).

    Columns other than the AU intensities are kept when the file has them, else None.
    """

    aus: np.ndarray  # float32 (N, 17), OpenFace's 0-5 scale, AU_IDS order
    names: Optional[tuple[str, ...]] = None  # the `name` column that write_openface_csv adds
    frame: Optional[np.ndarray] = None  # int (N,), FeatureExtraction
    face_id: Optional[np.ndarray] = None  # int (N,): `face` (FaceLandmarkImg) or `face_id` (FeatureExtraction)
    timestamp: Optional[np.ndarray] = None  # float (N,) seconds, FeatureExtraction
    confidence: Optional[np.ndarray] = None  # float (N,)
    success: Optional[np.ndarray] = None  # bool (N,), FeatureExtraction: False where tracking failed
    lines: Optional[tuple[int, ...]] = None  # each row's line in the file it was read from

    def __len__(self) -> int:
        return len(self.aus)


def _openface_column(au_id: int) -> str:
    return f"AU{au_id:02d}_r"


def read_openface_csv(source: Source) -> OpenFaceTable:
    """Read the AU intensities (`AUxx_r` columns) of an OpenFace FaceLandmarkImg or FeatureExtraction CSV.

    Columns are found by name; the spaces OpenFace writes after each comma are ignored, and both `AU01_r` and
    `AU1_r` are accepted. Occurrence (`_c`) and all other columns are ignored.
    """
    data = read_source(source)
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise AUError(f"{source_name(source)}: not a CSV text file (not UTF-8 text)") from None
    return _read_openface_rows(list(csv.reader(io.StringIO(text), skipinitialspace=True)), source_name(source))


def _read_openface_rows(rows: list[list[str]], where: str) -> OpenFaceTable:
    numbered = [(line, row) for line, row in enumerate(rows, start=1) if any(cell.strip() for cell in row)]
    if not numbered:
        raise AUError(f"{where}: empty file, expected an OpenFace CSV header")
    header = [cell.strip() for cell in numbered[0][1]]
    body = numbered[1:]
    au_columns = {}
    for position, column in enumerate(header):
        if re.fullmatch(r"AU\d+_r", column, re.IGNORECASE) and int(column[2:-2]) in AU_IDS:
            index = au_index(column)
            if index in au_columns:
                raise AUError(f"{where}: {AU_NAMES[index]} appears twice ('{header[au_columns[index]]}', '{column}')")
            au_columns[index] = position
    missing = [_openface_column(au_id) for i, au_id in enumerate(AU_IDS) if i not in au_columns]
    if missing:
        raise AUError(f"{where}: missing AU intensity columns {', '.join(missing)} (OpenFace writes all 17)")
    for line, row in body:
        if len(row) != len(header):
            raise AUError(f"{where}: line {line} has {len(row)} fields, the header has {len(header)}")

    def column(name: str, dtype) -> np.ndarray:
        position = header.index(name)
        values = []
        for line, row in body:
            try:
                values.append(float(row[position]))
            except ValueError:
                cell = row[position].strip()
                raise AUError(f"{where}: line {line}, column '{name}': '{cell}' is not a number") from None
        return np.array(values, dtype=np.float64).astype(dtype)

    def optional(name: str, dtype) -> Optional[np.ndarray]:
        return column(name, dtype) if name in header else None

    aus = np.zeros((len(body), NUM_AUS), dtype=np.float32)
    for index, position in au_columns.items():
        aus[:, index] = column(header[position], np.float32)
    success = optional("success", np.float64)
    return OpenFaceTable(
        aus=aus,
        names=tuple(row[header.index("name")].strip() for _, row in body) if "name" in header else None,
        frame=optional("frame", np.int64),
        face_id=optional("face" if "face" in header else "face_id", np.int64),
        timestamp=optional("timestamp", np.float64),
        confidence=optional("confidence", np.float64),
        success=None if success is None else success != 0,
        lines=tuple(line for line, _ in body),
    )


def _float32_text(value: float) -> str:
    """The shortest decimal that reads back as the same float32 (the precision read_openface_csv keeps)."""
    return np.format_float_positional(np.float32(value), trim="-")


def write_openface_csv(
    destination: Union[str, os.PathLike, TextIO],
    names: Optional[Sequence[str]],
    aus,
    confidence: float = 1.0,
) -> None:
    """Write AU intensities (N, 17) in OpenFace FaceLandmarkImg's layout: `face, confidence, AU01_r, ...`.

    With `names` (one per row, e.g. image names), a leading `name` column is added and every row is face 0 of its
    image; without, rows are faces 0..N-1 of one image. OpenFace's ', ' separators and zero-padded AU names are kept.
    """
    table = np.asarray(aus, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != NUM_AUS:
        raise AUError(f"write_openface_csv: expected AU intensities of shape (N, {NUM_AUS}), got {table.shape}")
    if names is not None:
        if len(names) != len(table):
            raise AUError(f"write_openface_csv: {len(names)} names for {len(table)} rows")
        unwritable = [name for name in names if re.search(r'[,"\n\r]', str(name)) or str(name) != str(name).strip()]
        if unwritable:
            raise AUError(f"write_openface_csv: names cannot hold commas, quotes, line breaks or outer spaces: "
                          f"{unwritable[0]!r}")
    header = (["name"] if names is not None else []) + ["face", "confidence"]
    header += [_openface_column(au_id) for au_id in AU_IDS]
    lines = [", ".join(header)]
    for row, values in enumerate(table):
        name_cell = [str(names[row])] if names is not None else []
        face = 0 if names is not None else row
        cells = name_cell + [str(face), f"{confidence:g}"] + [_float32_text(value) for value in values]
        lines.append(", ".join(cells))
    text = "\n".join(lines) + "\n"
    if isinstance(destination, (str, os.PathLike)):
        with open(destination, "w", encoding="utf-8", newline="") as file:
            file.write(text)
    else:
        destination.write(text)


# ---------------------------------------------------------------------------------------------------------------
# GANimation's aus_openface.pkl: {image name without extension: float64 (17,) array}, a Python-2 protocol-2 pickle.

_RECONSTRUCT = np.zeros(1).__reduce__()[0]  # the function NumPy pickles arrays with (any protocol below 5)
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]  # the one it uses with protocol 5


def _latin1_encode(text: str, encoding: str) -> bytes:
    """Python 3 pickles bytes for protocol <= 2 as `_codecs.encode(text, 'latin1')`; allow exactly that."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise UnsafePickleError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return text.encode("latin1")


# The only globals a pickle may name: NumPy's array and dtype reconstruction, under NumPy 1 and 2 module names.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in _ALLOWED_GLOBALS; anything else stops the load."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global '{module}.{name}': an AU pickle may only hold NumPy arrays"
            ) from None


def read_aus_pkl(source: Source) -> dict[str, np.ndarray]:
    """Load an `aus_openface.pkl` (path, bytes or binary file) as {name: float64 (17,) AU vector}.

    Python-2 byte strings are decoded as latin1 (as NumPy's own array pickles need), and the unpickler only
    resolves NumPy's array-reconstruction globals, so a malicious file raises UnsafePickleError instead of running.
    """
    where = source_name(source)
    try:
        loaded = _ArrayOnlyUnpickler(io.BytesIO(read_source(source)), encoding="latin1").load()
    except UnsafePickleError as error:
        raise UnsafePickleError(f"{where}: {error}") from None
    except Exception as error:  # a truncated or non-pickle file can fail in many ways inside pickle
        raise AUError(f"{where}: not a readable AU pickle ({type(error).__name__}: {error})") from error
    if not isinstance(loaded, dict):
        raise AUError(f"{where}: expected a dict of name -> AU vector, got {type(loaded).__name__}")
    result = {}
    for name, vector in loaded.items():
        if not isinstance(name, str):
            raise AUError(f"{where}: key {name!r} is not a string")
        array = np.asarray(vector)
        if array.shape != (NUM_AUS,) or not np.issubdtype(array.dtype, np.number):
            raise AUError(f"{where}: '{name}' holds {array.dtype} {array.shape}, expected {NUM_AUS} AU intensities")
        result[name] = array.astype(np.float64)
    return result


def _pickle_binstring(data: bytes) -> bytes:
    return pickle.BINSTRING + struct.pack("<i", len(data)) + data


def _pickle_array_ops(vector: np.ndarray) -> bytes:
    """Protocol-2 opcodes rebuilding a 1-D float64 array exactly as NumPy 1.x under Python 2 pickled it."""
    return b"".join([
        pickle.GLOBAL, b"numpy.core.multiarray\n_reconstruct\n",
        pickle.GLOBAL, b"numpy\nndarray\n",
        pickle.BININT1, b"\x00", pickle.TUPLE1, _pickle_binstring(b"b"), pickle.TUPLE3,
        pickle.REDUCE,  # _reconstruct(ndarray, (0,), 'b'): an empty array to fill
        pickle.MARK,
        pickle.BININT1, b"\x01",  # state version
        pickle.BININT, struct.pack("<i", len(vector)), pickle.TUPLE1,  # shape
        pickle.GLOBAL, b"numpy\ndtype\n", _pickle_binstring(b"f8"), pickle.BININT1, b"\x00", pickle.BININT1, b"\x01",
        pickle.TUPLE3, pickle.REDUCE,  # dtype('f8', 0, 1)
        pickle.MARK, pickle.BININT1, b"\x03", _pickle_binstring(b"<"), pickle.NONE, pickle.NONE, pickle.NONE,
        pickle.BININT, struct.pack("<i", -1), pickle.BININT, struct.pack("<i", -1), pickle.BININT1, b"\x00",
        pickle.TUPLE, pickle.BUILD,  # dtype state: little-endian float64
        pickle.NEWFALSE,  # not Fortran order
        _pickle_binstring(vector.astype("<f8").tobytes()),
        pickle.TUPLE, pickle.BUILD,
    ])


def write_aus_pkl(destination: Union[str, os.PathLike, BinaryIO], mapping: Mapping[str, np.ndarray]) -> None:
    """Write {name: (17,) AU vector} as a protocol-2 pickle of float64 arrays that GANimation's code can load.

    The opcodes are written here rather than by `pickle.dump` because NumPy 2 pickles arrays under
    `numpy._core`, a module that NumPy 1.x (GANimation's Python 2 / 3.6 environments) does not have; this writes
    the `numpy.core.multiarray` names the original file uses. Names are stored as unicode strings.
    """
    parts = [pickle.PROTO, b"\x02", pickle.EMPTY_DICT]
    for name, vector in mapping.items():
        if not isinstance(name, str):
            raise AUError(f"write_aus_pkl: key {name!r} is not a string")
        array = np.asarray(vector, dtype=np.float64)
        if array.shape != (NUM_AUS,):
            raise AUError(f"write_aus_pkl: '{name}' has shape {array.shape}, expected ({NUM_AUS},)")
        encoded = name.encode("utf-8")
        parts += [pickle.BINUNICODE, struct.pack("<I", len(encoded)), encoded, _pickle_array_ops(array), pickle.SETITEM]
    parts.append(pickle.STOP)
    data = b"".join(parts)
    if isinstance(destination, (str, os.PathLike)):
        with open(destination, "wb") as file:
            file.write(data)
    else:
        destination.write(data)
