"""Image decoding, video encoding with the real ffmpeg, and output layouts."""
import io
import os
import stat

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image, ImageFile

from probe import probe_video

from ganbatch import layout
from ganbatch.io import images, storage, video
from ganbatch.io.images import ImageDecodeError
from ganbatch.io.video import VideoEncodeError


def _encode(array, image_format, **options):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _blocks(height=24, width=40):
    """An RGB image of four flat colour blocks (survives JPEG well) with a distinct top-left corner."""
    image = np.zeros((height, width, 3), np.uint8)
    image[: height // 2, : width // 2] = (220, 30, 30)
    image[: height // 2, width // 2:] = (30, 200, 40)
    image[height // 2:, : width // 2] = (40, 40, 210)
    image[height // 2:, width // 2:] = (240, 240, 240)
    return image


def _moving_gradient(count=12, height=31, width=45):
    """Smooth frames (a horizontal gradient sliding right) that lossy codecs reproduce closely."""
    t, y, x = np.meshgrid(np.arange(count), np.arange(height), np.arange(width), indexing="ij")
    red = (x * 5 + t * 8) % 256
    green = y * 8
    blue = np.full_like(red, 128)
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def _decoded_frames(path):
    reader = imageio_ffmpeg.read_frames(str(path))
    width, height = next(reader)["size"]
    return np.stack([np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader])


def _script(tmp_path, body):
    path = tmp_path / "fake-ffmpeg.sh"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


# ------------------------------------------------------------------------------------------------ decoding


@pytest.mark.parametrize("image_format, options, tolerance", [
    ("PNG", {}, 0), ("BMP", {}, 0), ("TIFF", {}, 0), ("WEBP", {"lossless": True}, 0),
    ("WEBP", {"quality": 90}, 12), ("JPEG", {"quality": 95}, 12),
])
def test_decode_formats(image_format, options, tolerance):
    expected = _blocks()
    decoded = images.decode_image(_encode(expected, image_format, **options), f"face.{image_format.lower()}")
    assert decoded.dtype == np.uint8 and decoded.shape == (24, 40, 3)
    assert np.abs(decoded.astype(int) - expected).mean() <= tolerance


def test_exif_orientation_is_applied():
    original = _blocks()
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation 6: the stored pixels must be turned 90 degrees clockwise for display
    decoded = images.decode_image(_encode(original, "JPEG", quality=95, exif=exif.tobytes()), "phone.jpg")
    expected = np.rot90(original, k=-1)  # clockwise
    assert decoded.shape == (40, 24, 3)
    assert np.abs(decoded.astype(int) - expected).mean() < 12


def test_grayscale_palette_and_16bit_become_rgb():
    gray = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (20, 1))
    decoded = images.decode_image(_encode(gray, "PNG"), "gray.png")
    assert decoded.shape == (20, 25, 3) and (decoded == gray[..., None]).all()

    wide = (np.tile(np.arange(25, dtype=np.uint16), (20, 1)) * 257 * 10).astype(np.uint16)  # 16-bit: v * 257
    decoded = images.decode_image(_encode(wide, "PNG"), "deep.png")
    assert (decoded == (np.arange(25) * 10).astype(np.uint8)[None, :, None]).all()

    palette_image = Image.fromarray(_blocks()).quantize(colors=4)
    buffer = io.BytesIO()
    palette_image.save(buffer, format="PNG")
    assert (images.decode_image(buffer.getvalue(), "palette.png") == _blocks()).all()

    cmyk = Image.fromarray(_blocks()).convert("CMYK")
    buffer = io.BytesIO()
    cmyk.save(buffer, format="JPEG", quality=95)
    assert images.decode_image(buffer.getvalue(), "print.jpg").shape == (24, 40, 3)


def test_transparency_is_composited_over_white():
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 255  # red everywhere
    rgba[:, :8, 3] = 255  # left half opaque
    rgba[:, 8:12, 3] = 0  # transparent
    rgba[:, 12:, 3] = 102  # 40 % opaque
    decoded = images.decode_image(_encode(rgba, "PNG"), "cutout.png").astype(int)
    assert (decoded[:, :8] == (255, 0, 0)).all()
    assert (decoded[:, 8:12] == 255).all()
    # over white: 255 * (1 - a) + colour * a with a = 0.4 -> green and blue 153
    assert (decoded[:, 12:, 0] == 255).all() and (np.abs(decoded[:, 12:, 1:] - 153) <= 1).all()

    gray_alpha = Image.fromarray(np.dstack([np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8)]), "LA")
    buffer = io.BytesIO()
    gray_alpha.save(buffer, format="PNG")
    assert (images.decode_image(buffer.getvalue(), "clear.png") == 255).all()


def test_bad_images_raise_with_distinct_reasons():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    noisy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    jpeg = _encode(noisy, "JPEG")
    cases = {
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "notes.jpg": (b"this is a text file, not a photo\n", "not an image"),
        "dot.png": (_encode(np.zeros((1, 1, 3), np.uint8), "PNG"), "image is 1x1, smaller than 16 px"),
        "empty.jpg": (b"", "empty file"),
    }
    reasons = set()
    for name, (data, expected) in cases.items():
        with pytest.raises(ImageDecodeError, match=expected) as info:
            images.decode_image(data, name)
        assert info.value.name == name and str(info.value).startswith(f"{name}: ")
        reasons.add(info.value.reason)
    assert len(reasons) == len(cases)
    small = _encode(np.zeros((8, 12, 3), np.uint8), "PNG")
    assert images.decode_image(small, "small.png", min_size=8).shape == (8, 12, 3)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bombs_are_refused(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    for side in (40, 64):  # 1600 px: above the limit; 4096 px: above twice the limit, where PIL itself refuses
        with pytest.raises(ImageDecodeError, match="decompression bomb"):
            images.decode_image(_encode(np.zeros((side, side, 3), np.uint8), "PNG"), "bomb.png")


# ------------------------------------------------------------------------------------------------ video


def test_ffmpeg_executable_precedence(monkeypatch):
    monkeypatch.delenv("FFMPEG_BINARY", raising=False)
    assert video.ffmpeg_executable() == imageio_ffmpeg.get_ffmpeg_exe()
    monkeypatch.setenv("FFMPEG_BINARY", "/opt/ffmpeg/bin/ffmpeg")
    assert video.ffmpeg_executable() == "/opt/ffmpeg/bin/ffmpeg"


@pytest.mark.parametrize("video_format, size, fps, tolerance", [
    ("mp4", (46, 32), 10.0, 6),  # 45x31 is padded to even sides for yuv420p
    ("webm", (45, 31), 10.0, 8),
    ("gif", (45, 31), 10.0, 12),  # 10 fps = 10/100 s per frame, exact in GIF
    ("png", (45, 31), None, 0),
])
def test_encode_formats(tmp_path, video_format, size, fps, tolerance):
    frames = _moving_gradient()
    target = tmp_path / ("frames" if video_format == "png" else f"clip.{video_format}")
    path = video.encode_video(frames, target, fps=10, format=video_format)
    assert path == target
    info = probe_video(path)
    assert (info["frames"], (info["width"], info["height"]), info["fps"]) == (12, size, fps)
    if video_format == "png":
        decoded = np.stack([np.asarray(Image.open(p)) for p in sorted(path.iterdir())])
        assert sorted(p.name for p in path.iterdir())[:2] == ["frame_00000.png", "frame_00001.png"]
    else:
        decoded = _decoded_frames(path)
    assert np.abs(decoded[:, :31, :45].astype(int) - frames).mean() <= tolerance
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_mp4_is_h264_yuv420p_with_faststart(tmp_path):
    path = video.encode_video(_moving_gradient(), tmp_path / "clip.mp4", fps=25, format="mp4", crf=23)
    info = probe_video(path)
    assert (info["codec"], info["pix_fmt"], info["fps"]) == ("h264", "yuv420p", 25.0)
    data = path.read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")


def test_webm_is_vp9_and_gif_loops_forever(tmp_path):
    frames = _moving_gradient(count=4)
    assert probe_video(video.encode_video(frames, tmp_path / "a.webm", fps=10, format="webm"))["codec"] == "vp9"
    with Image.open(video.encode_video(frames, tmp_path / "a.gif", fps=10, format="gif")) as gif:
        assert gif.info["loop"] == 0 and gif.n_frames == 4


def test_streaming_writer_appears_only_when_closed(tmp_path):
    frames = _moving_gradient(count=7)
    target = tmp_path / "stream.mp4"
    with video.VideoWriter(target, fps=10, format="mp4") as writer:
        writer.write(frames[0])  # one (H, W, 3) frame
        writer.write(frames[1:5])  # a batch
        writer.write(frames[5:])
        assert not target.exists()
    assert writer.frames_written == 7 and probe_video(target)["frames"] == 7
    assert [p.name for p in tmp_path.iterdir()] == ["stream.mp4"]


def test_failing_ffmpeg_reports_stderr_and_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setenv("FFMPEG_BINARY", _script(tmp_path, 'echo "codec exploded" >&2; exit 3'))
    with pytest.raises(VideoEncodeError, match=r"exit status 3\)[\s\S]*codec exploded") as info:
        video.encode_video(_moving_gradient(), out / "clip.mp4", fps=10, format="mp4")
    assert info.value.path == str(out / "clip.mp4")
    assert list(out.iterdir()) == []


def test_killed_ffmpeg_reports_signal_and_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "out"
    crash = 'echo "about to be killed" >&2; head -c 1000 > /dev/null; kill -9 $$'
    monkeypatch.setenv("FFMPEG_BINARY", _script(tmp_path, crash))
    frames = np.zeros((20, 64, 64, 3), np.uint8)  # 240 KB: more than a pipe buffer
    with pytest.raises(VideoEncodeError, match=r"killed by signal 9[\s\S]*about to be killed"):
        video.encode_video(frames, out / "clip.webm", fps=10, format="webm")
    assert list(out.iterdir()) == []


def test_real_ffmpeg_error_is_in_the_message(tmp_path, monkeypatch):
    real = imageio_ffmpeg.get_ffmpeg_exe()
    monkeypatch.setenv("FFMPEG_BINARY", _script(tmp_path, f'exec "{real}" -no_such_option_xyz "$@"'))
    with pytest.raises(VideoEncodeError, match="no_such_option_xyz"):
        video.encode_video(_moving_gradient(count=2), tmp_path / "out" / "clip.gif", fps=10, format="gif")
    assert list((tmp_path / "out").iterdir()) == []


def test_error_inside_writer_block_removes_partial_output(tmp_path):
    for video_format, name in (("mp4", "clip.mp4"), ("png", "frames")):
        with pytest.raises(KeyError):
            with video.VideoWriter(tmp_path / name, fps=10, format=video_format) as writer:
                writer.write(_moving_gradient(count=3))
                raise KeyError("renderer failed")
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="crf for mp4 must be in 0..51"):
        video.VideoWriter(tmp_path / "a.mp4", fps=10, format="mp4", crf=60)
    with pytest.raises(ValueError, match="crf applies to mp4 and webm only"):
        video.VideoWriter(tmp_path / "a.gif", fps=10, format="gif", crf=20)
    with pytest.raises(ValueError, match="unknown video format 'avi'"):
        video.VideoWriter(tmp_path / "a.avi", fps=10, format="avi")
    with pytest.raises(ValueError, match="frames are 45x31, the video is 64x64"):
        with video.VideoWriter(tmp_path / "a.mp4", fps=10, format="mp4", size=(64, 64)) as writer:
            writer.write(_moving_gradient(count=1))
    with pytest.raises(ValueError, match="expected uint8"):
        video.encode_video(np.zeros((2, 16, 16, 3), np.float32), tmp_path / "b.mp4", fps=10, format="mp4")
    with pytest.raises(VideoEncodeError, match="no frames were written"):
        video.VideoWriter(tmp_path / "c.mp4", fps=10, format="mp4").close()
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------ layouts


@pytest.fixture
def animation():
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (3, 8, 10, 3), dtype=np.uint8)
    source = rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)
    attention = rng.random((3, 8, 10))
    attention[0, 0, 0], attention[0, 0, 1], attention[0, 0, 2] = 0.0, 1.0, 0.5
    return frames, source, attention


def test_layouts_place_panels(animation):
    frames, source, attention = animation
    assert (layout.compose_frames(frames) == frames).all()

    pair = layout.compose_frames(frames, layout="side-by-side", source=source)
    assert pair.shape == (3, 8, 20, 3)
    assert (pair[:, :, :10] == source).all() and (pair[:, :, 10:] == frames).all()

    triple = layout.compose_frames(frames, layout="with-mask", source=source, attention=attention)
    assert triple.shape == (3, 8, 30, 3) and triple.dtype == np.uint8
    assert (triple[:, :, :20] == pair).all()
    mask = triple[:, :, 20:].astype(int)
    assert (mask == mask[..., :1]).all()  # gray
    assert tuple(mask[0, 0, :3, 0]) == (0, 255, 128)  # black = 0, white = 1 (keeps the input)
    assert (np.abs(mask[..., 0] - attention * 255) <= 0.5).all()


def test_layout_upscaling_resizes_each_panel(animation):
    frames, _, attention = animation
    flat = np.full((8, 10, 3), 77, np.uint8)
    scaled = layout.compose_frames(frames, layout="with-mask", source=flat, attention=attention, size=24)
    assert scaled.shape == (3, 24, 90, 3)
    assert (scaled[:, :, :30] == 77).all()  # a flat panel stays flat: no bleeding from its neighbour
    single = layout.compose_frames(frames, size=16)
    assert single.shape == (3, 16, 20, 3)
    # 2x upscaling then averaging 2x2 blocks gives back roughly the original frames
    blocks = single.reshape(3, 8, 2, 10, 2, 3).mean(axis=(2, 4))
    assert np.abs(blocks - frames).mean() < 25


def test_layout_errors_name_the_field(animation):
    frames, source, attention = animation
    with pytest.raises(ValueError, match="source: the side-by-side layout needs"):
        layout.compose_frames(frames, layout="side-by-side")
    with pytest.raises(ValueError, match="source: shape"):
        layout.compose_frames(frames, layout="side-by-side", source=source[:4])
    with pytest.raises(ValueError, match="attention: shape"):
        layout.compose_frames(frames, layout="with-mask", source=source, attention=attention[0])
    with pytest.raises(ValueError, match="unknown layout 'grid'"):
        layout.compose_frames(frames, layout="grid")


def test_preview_strip_picks_evenly_spaced_frames():
    frames = np.stack([np.full((4, 5, 3), 10 * t, np.uint8) for t in range(11)])
    strip = layout.preview_strip(frames, n=6)
    assert strip.shape == (4, 30, 3)
    assert [int(strip[0, 5 * i, 0]) for i in range(6)] == [0, 20, 40, 60, 80, 100]
    assert layout.preview_strip(frames[:3], n=6).shape == (4, 15, 3)


def test_write_image_local_and_s3(tmp_path, s3_bucket):
    image = _blocks()
    images.write_image(tmp_path / "preview.png", image)
    assert (np.asarray(Image.open(tmp_path / "preview.png")) == image).all()
    assert os.listdir(tmp_path) == ["preview.png"]
    uri = f"s3://{s3_bucket}/previews/strip.png"
    images.write_image(uri, image)
    assert (images.decode_image(storage.read_bytes(uri), uri) == image).all()
    with pytest.raises(ValueError, match="unknown image extension '.xyz'"):
        images.write_image(tmp_path / "preview.xyz", image)


# ------------------------------------------------------------------------------------------------ reading


def test_read_video_decodes_files_and_png_folders_local_and_s3(tmp_path, s3_bucket):
    frames = _moving_gradient(count=5, height=32, width=48)
    folder = video.encode_video(frames, tmp_path / "clip_frames", fps=10, format="png")
    assert (video.read_video(str(folder)) == frames).all()  # PNG frames are lossless
    clip = video.encode_video(frames, tmp_path / "clip.mp4", fps=10, format="mp4")
    decoded = video.read_video(str(clip))
    assert decoded.shape == frames.shape and (decoded == _decoded_frames(clip)).all()
    uri = f"s3://{s3_bucket}/videos/clip.mp4"
    storage.upload_file(clip, uri)
    assert (video.read_video(uri) == decoded).all()
    with video.open_video(clip) as (meta, stream):
        assert meta["size"] == (48, 32) and next(stream).shape == (32, 48, 3)


@pytest.mark.parametrize("suffix", images.IMAGE_SUFFIXES)
def test_every_listed_image_suffix_decodes(tmp_path, suffix):
    """The one list of photo suffixes (animate inputs, training data, calibration) names only decodable formats."""
    lossy = suffix in (".jpg", ".jpeg", ".webp")
    Image.fromarray(_blocks()).save(tmp_path / f"face{suffix}", **({"quality": 95} if lossy else {}))
    data = (tmp_path / f"face{suffix}").read_bytes()
    error = np.abs(images.decode_image(data, f"face{suffix}").astype(int) - _blocks())
    assert error.mean() <= 4 if lossy else error.max() == 0
