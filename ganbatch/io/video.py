"""Video in and out through one ffmpeg: encoding uint8 RGB frames (fed raw on stdin), decoding and probing files.

The executable is, in order of precedence, ``$FFMPEG_BINARY``, then imageio-ffmpeg's
:func:`imageio_ffmpeg.get_ffmpeg_exe` (its bundled binary, which itself falls back to ``$IMAGEIO_FFMPEG_EXE`` first
and to ``ffmpeg`` on PATH when it ships none). ffmpeg-python builds the encoders' command lines; imageio-ffmpeg's
reader decodes (:func:`open_video`). Every output is written under a temporary sibling name and renamed into place
only when complete (see :func:`ganbatch.io.atomic.atomic_local_path`).
"""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import ffmpeg
import imageio_ffmpeg
import numpy as np
from PIL import Image

from ganbatch.choices import VIDEO_FORMATS
from ganbatch.io.atomic import atomic_local_path
from ganbatch.io.images import check_uint8, decode_image

# Constant-quality defaults and valid ranges: x264 (8-bit) accepts 0-51, libvpx-vp9 0-63; lower is better.
DEFAULT_CRF = {"mp4": 18, "webm": 31}
CRF_RANGE = {"mp4": (0, 51), "webm": (0, 63)}
_STDERR_TAIL_BYTES = 2000


class VideoEncodeError(RuntimeError):
    """Encoding the video at ``path`` failed for ``reason`` (which ends with ffmpeg's stderr tail when it ran)."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self):
        return type(self), (self.path, self.reason)


def ffmpeg_executable() -> str:
    """The ffmpeg to run: ``$FFMPEG_BINARY``, else imageio-ffmpeg's binary (or the PATH ffmpeg it falls back to)."""
    override = os.environ.get("FFMPEG_BINARY")
    if override:
        return override
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as error:
        reason = f"no ffmpeg found: set FFMPEG_BINARY or put ffmpeg on PATH ({error})"
        raise VideoEncodeError("ffmpeg", reason) from error


class VideoWriter:
    """Stream uint8 RGB frames into an mp4, webm or gif file, or a folder of numbered PNG frames.

    Formats: ``mp4`` is H.264 (libx264, yuv420p, ``+faststart`` so the index precedes the data); as yuv420p needs
    even sides, an odd width or height is padded by one black pixel on the right/bottom. ``webm`` is VP9 (libvpx-vp9)
    in constant-quality mode (``-crf`` with ``-b:v 0``), yuv420p. ``gif`` uses a palette computed from all frames
    (palettegen/paletteuse) and loops forever; GIF stores frame delays in 1/100 s, so fps is rounded to 100/n.
    ``png`` is a folder of ``frame_00000.png``, ... (written with PIL, no ffmpeg). ``crf`` applies to mp4/webm
    (defaults in ``DEFAULT_CRF``). ``size`` (width, height) is taken from the first frames when not given.

    Use as a context manager, or call :meth:`close`. The output appears at ``path`` only after a successful close; on
    any error (including an ffmpeg failure, whose stderr tail is in the :class:`VideoEncodeError`) it is removed.
    """

    def __init__(self, path: str | os.PathLike, *, fps: float, format: str, crf: int | None = None,
                 size: tuple[int, int] | None = None):
        if format not in VIDEO_FORMATS:
            raise ValueError(f"{path}: unknown video format {format!r} (choose from {', '.join(VIDEO_FORMATS)})")
        if not fps > 0:
            raise ValueError(f"{path}: fps must be positive, got {fps}")
        if crf is not None:
            if format not in CRF_RANGE:
                raise ValueError(f"{path}: crf applies to mp4 and webm only, not {format}")
            low, high = CRF_RANGE[format]
            if not low <= crf <= high:
                raise ValueError(f"{path}: crf for {format} must be in {low}..{high}, got {crf}")
        self.path = Path(path)
        self.format = format
        self.fps = fps
        self.crf = DEFAULT_CRF.get(format) if crf is None else crf
        self.size = size
        self.frames_written = 0
        self._encoder: _FfmpegEncoder | _PngFolderEncoder | None = None
        self._outputs = ExitStack()  # holds the atomic temporary output once the first frames arrive
        self._closed = False

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif not self._closed:
            self._abort(exc_type, exc, tb)

    def write(self, frames: np.ndarray) -> None:
        """Append one (H, W, 3) frame or a (T, H, W, 3) batch of uint8 RGB frames."""
        if self._closed:
            raise ValueError(f"{self.path}: write() after close()")
        frames = check_frames(frames, str(self.path))
        frame_size = (frames.shape[2], frames.shape[1])
        if self.size is not None and tuple(self.size) != frame_size:
            raise ValueError(f"{self.path}: frames are {frame_size[0]}x{frame_size[1]}, "
                             f"the video is {self.size[0]}x{self.size[1]}")
        self.size = frame_size
        with self._abort_on_error():
            if self._encoder is None:
                temporary = self._outputs.enter_context(atomic_local_path(self.path))
                self._encoder = self._start_encoder(temporary)
            self._encoder.write(frames)
        self.frames_written += len(frames)

    def close(self) -> Path:
        """Finish encoding and move the output into place; returns its path."""
        if self._closed:
            return self.path
        if self._encoder is None:
            self._closed = True
            raise VideoEncodeError(self.path, "no frames were written")
        self._closed = True
        with self._outputs:  # commits the temporary output, or removes it when finishing fails
            self._encoder.finish()
        return self.path

    def _start_encoder(self, temporary: Path) -> _FfmpegEncoder | _PngFolderEncoder:
        if self.format == "png":
            return _PngFolderEncoder(temporary)
        return _FfmpegEncoder(self.path, _ffmpeg_command(temporary, self.format, self.fps, self.crf, self.size))

    def _abort(self, exc_type, exc, tb) -> None:
        self._closed = True
        if self._encoder is not None:
            self._encoder.kill()
        self._outputs.__exit__(exc_type, exc, tb)  # removes the temporary output; the exception propagates

    @contextlib.contextmanager
    def _abort_on_error(self):
        try:
            yield
        except BaseException as error:
            self._abort(type(error), error, error.__traceback__)
            raise


def encode_video(frames: np.ndarray, path: str | os.PathLike, *, fps: float, format: str,
                 crf: int | None = None) -> Path:
    """Encode uint8 (T, H, W, 3) RGB frames to ``path`` in one go (see :class:`VideoWriter`); returns the path."""
    with VideoWriter(path, fps=fps, format=format, crf=crf) as writer:
        writer.write(frames)
    return writer.path


@contextlib.contextmanager
def open_video(path: str | os.PathLike) -> Iterator[tuple[dict, Iterator[np.ndarray]]]:
    """(metadata, frames) of a local video file: imageio-ffmpeg's metadata (size, fps, codec, pix_fmt, ...) and an
    iterator decoding its uint8 (H, W, 3) RGB frames one at a time; the ffmpeg process ends with the block."""
    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(reader)
        width, height = meta["size"]
        yield meta, (np.frombuffer(data, np.uint8).reshape(height, width, 3) for data in reader)
    finally:
        reader.close()


def missing_frames(meta: dict, decoded: int) -> str | None:
    """Why a video whose frames were decoded falls short of its header (duration x fps), e.g. a file cut short by a
    partial download; None when the count matches (within 5 %, at least 2 frames) or the header gives no length."""
    duration, fps = meta.get("duration") or 0, meta.get("fps") or 0
    expected = round(duration * fps) if duration > 0 and fps > 0 else 0
    if not expected or decoded >= expected - max(2, round(0.05 * expected)):
        return None
    return (f"only {decoded} of its {expected} frames could be decoded (its header says {duration:g} s at {fps:g} fps):"
            " the file is cut short or damaged; download or re-encode it again")


def read_video(uri: str) -> np.ndarray:
    """The uint8 (T, H, W, 3) frames of a video file or of a folder/prefix of numbered PNG frames (local or s3://)."""
    from ganbatch.io import storage  # the cloud stack only to read (encoding and layouts need none)

    if not uri.lower().endswith((".mp4", ".webm", ".gif")):
        return np.stack([decode_image(storage.read_bytes(frame), frame)
                         for frame in storage.list_uris(uri, suffixes=(".png",))])
    with storage.local_copy(uri) as path, open_video(path) as (_, frames):
        return np.stack(list(frames))


def _ffmpeg_command(output: Path, format: str, fps: float, crf: int | None, size: tuple[int, int]) -> list[str]:
    """The ffmpeg command line reading raw rgb24 frames of ``size`` from stdin and writing ``output``."""
    width, height = size
    frames = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", framerate=fps)
    target = str(output)
    if format == "mp4":
        stream = frames.filter("pad", "ceil(iw/2)*2", "ceil(ih/2)*2").output(
            target, format="mp4", vcodec="libx264", pix_fmt="yuv420p", crf=crf, preset="medium",
            movflags="+faststart",
        )
    elif format == "webm":
        stream = frames.output(
            target, format="webm", vcodec="libvpx-vp9", pix_fmt="yuv420p", crf=crf,
            **{"b:v": 0, "deadline": "good", "cpu-used": 4, "row-mt": 1},
        )
    else:  # gif: one graph computes the palette from all frames and maps the frames onto it
        copies = frames.split()
        palette = copies[0].filter("palettegen")
        stream = ffmpeg.filter([copies[1], palette], "paletteuse").output(target, format="gif", loop=0)
    return stream.global_args("-hide_banner", "-loglevel", "warning").overwrite_output().compile(
        cmd=ffmpeg_executable()
    )


class _FfmpegEncoder:
    """A running ffmpeg process fed on stdin; its stderr goes to a temporary file (a pipe nobody reads can block)."""

    def __init__(self, label: Path, command: list[str]):
        self._label = label
        self._stderr = tempfile.TemporaryFile()
        try:
            self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                             stderr=self._stderr)
        except OSError as error:
            self._stderr.close()
            raise VideoEncodeError(label, f"cannot run {command[0]}: {error}") from error

    def write(self, frames: np.ndarray) -> None:
        try:
            self._process.stdin.write(np.ascontiguousarray(frames).data)
        except BrokenPipeError:  # ffmpeg exited early: wait for its exit status, then report its stderr
            with contextlib.suppress(BrokenPipeError):
                self._process.stdin.close()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
            raise self._failure("ffmpeg stopped reading frames") from None

    def finish(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self._process.stdin.close()
        if self._process.wait() != 0:
            raise self._failure("ffmpeg failed")
        self._stderr.close()

    def kill(self) -> None:
        self._process.kill()
        self._process.wait()
        with contextlib.suppress(BrokenPipeError):
            self._process.stdin.close()
        self._stderr.close()

    def _failure(self, what: str) -> VideoEncodeError:
        code = self._process.returncode
        status = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        self._stderr.seek(max(0, self._stderr.seek(0, io.SEEK_END) - _STDERR_TAIL_BYTES))
        tail = self._stderr.read().decode("utf-8", errors="replace").strip()
        self._stderr.close()
        return VideoEncodeError(self._label, f"{what} ({status}); ffmpeg stderr:\n{tail or '(empty)'}")


class _PngFolderEncoder:
    """Writes frames as ``frame_00000.png``, ``frame_00001.png``, ... into a (temporary) folder."""

    def __init__(self, folder: Path):
        self._folder = folder
        self._folder.mkdir()
        self._count = 0

    def write(self, frames: np.ndarray) -> None:
        for frame in frames:
            Image.fromarray(frame).save(self._folder / f"frame_{self._count:05d}.png")
            self._count += 1

    def finish(self) -> None:
        """Nothing to flush: every frame is already a complete file."""

    def kill(self) -> None:
        """Nothing to stop: the caller removes the temporary folder."""


def check_frames(frames: np.ndarray, name: str) -> np.ndarray:
    """Validate uint8 RGB frames, promoting a single (H, W, 3) frame to a batch of one."""
    frames = check_uint8(frames, name)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[3] != 3 or 0 in frames.shape:
        raise ValueError(f"{name}: expected RGB frames shaped (T, H, W, 3) or (H, W, 3), got {frames.shape}")
    return frames
