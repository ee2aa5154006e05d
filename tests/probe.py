"""What the tests read back from a written video: frame count (by decoding every frame), fps, size, codec."""
from pathlib import Path

from PIL import Image

from ganbatch.io.video import open_video


def probe_video(path) -> dict:
    """Frame count (by decoding every frame), fps, width, height, codec and pixel format of a video.

    For a PNG frame folder, fps, codec and pix_fmt are None.
    """
    path = Path(path)
    if path.is_dir():
        frames = sorted(path.glob("frame_*.png"))
        if not frames:
            raise ValueError(f"{path}: no frame_*.png files in the folder")
        with Image.open(frames[0]) as first:
            width, height = first.size
        return {"frames": len(frames), "fps": None, "width": width, "height": height, "codec": None, "pix_fmt": None}
    with open_video(path) as (meta, frames):
        count = sum(1 for _ in frames)
    width, height = meta["size"]
    return {
        "frames": count,
        "fps": meta["fps"],
        "width": width,
        "height": height,
        "codec": meta["codec"].rstrip(","),
        "pix_fmt": meta["pix_fmt"].split("(")[0],
    }
