"""The HTML gallery of a batch (`ganbatch.animate.gallery`), checked in a real headless Chromium."""
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from browser import count, load, needs_chromium, screenshot
from ganbatch.animate.gallery import PAGE_SIZE, relative_to, render_page, write_gallery
from ganbatch.io.images import write_image
from ganbatch.io.video import encode_video


def _row(out, name, status="ok", error=None, input_uri="/photos/a.png", target="happy"):
    return {"input": input_uri, "output": f"{out}/{name}", "status": status, "frames": 8 if status == "ok" else None,
            "fps": 25.0, "seconds": 0.5, "error": error, "model": "demo", "target": target}


def _many(out, n, failed_every=7):
    return [_row(out, f"p{i:05d}__happy.mp4", *(("failed", f"p{i}.png: not an image") if i % failed_every == 0
                                              else ("ok", None))) for i in range(n)]


def test_relative_to_keeps_links_inside_the_destination(tmp_path):
    assert relative_to(f"{tmp_path}/out/a.mp4", f"{tmp_path}/out") == "a.mp4"
    assert relative_to("s3://b/x/out/sub/a.mp4", "s3://b/x/out/") == "sub/a.mp4"
    assert relative_to("s3://b/x/other/a.mp4", "s3://b/x/out") is None
    assert relative_to(f"{tmp_path}/elsewhere.mp4", f"{tmp_path}/out") is None


def test_embedded_rows_cannot_end_the_script():
    page = render_page([{"status": "failed", "error": "</script><script>alert(1)</script>"}], Counter(failed=1), {})
    data = page.split('<script id="data" type="application/json">')[1].split("</script>")[0]
    assert json.loads(data)[0]["error"] == "</script><script>alert(1)</script>"


@pytest.fixture
def batch(tmp_path):
    """A destination with two real mp4 videos, a png-frames folder and one failed item, and its manifest rows."""
    out = tmp_path / "out"
    photos = tmp_path / "photos"
    rng = np.random.default_rng(0)
    rows = []
    for name in ("a", "b"):
        write_image(photos / f"{name}.png", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
        encode_video(rng.integers(0, 255, (6, 64, 64, 3), dtype=np.uint8), out / f"{name}__happy.mp4", fps=25,
                     format="mp4")
        rows.append(_row(out, f"{name}__happy.mp4", input_uri=str(photos / f"{name}.png")))
    write_image(out / "a__sad" / "frame_00000.png", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    rows.append(_row(out, "a__sad", input_uri=str(photos / "a.png"), target="sad"))
    rows.append(_row(out, "c__happy.mp4", "failed", "c.png: not an image (a text file)",
                     input_uri=str(photos / "c.png")))
    return out, rows


@needs_chromium
def test_gallery_page_shows_every_item_with_posters_and_errors(batch, tmp_path):
    out, rows = batch
    index = write_gallery(rows, str(out), {"model": "demo", "time": "3.2 s"})
    assert index == f"{out}/index.html"
    dom, console = load(f"file://{index}")
    assert console == []
    assert count(dom, "item ") == 4 and count(dom, "item failed") == 1
    assert dom.count("<video") == 2 and 'poster="_gallery/posters/a__happy.mp4.jpg"' in dom
    assert (out / "_gallery/posters/a__happy.mp4.jpg").stat().st_size > 0
    assert 'src="a__sad/frame_00000.png"' in dom
    assert "c.png: not an image (a text file)" in dom
    assert dom.count('class="in"') == 3  # input thumbnails; c.png does not exist
    assert "<b>4</b> videos" in dom and "<b>1</b> failed" in dom and "time: <b>3.2 s</b>" in dom
    failed, _ = load(f"file://{index}#status=failed")
    assert count(failed, "item ") == 1 and count(failed, "item failed") == 1
    shot = screenshot(f"file://{index}", tmp_path / "gallery.png")
    assert shot.stat().st_size > 10_000
    # Nothing outside the destination was written, and every link is relative.
    assert not any(link.startswith(("/", "file:")) for link in _links(dom))


def _links(dom):
    import re

    return re.findall(r'(?:src|poster)="([^"]+)"', dom)


@needs_chromium
def test_ten_thousand_items_are_paginated(tmp_path):
    out = tmp_path / "out"
    rows = _many(out, 10_001)
    index = write_gallery(rows, str(out), {}, pictures=False)
    dom, console = load(f"file://{index}")
    assert console == []
    assert count(dom, "item ") == PAGE_SIZE and "page 1 of 51" in dom
    last, _ = load(f"file://{index}#page=51")
    assert count(last, "item ") == 1
    failed_total = sum(1 for row in rows if row["status"] == "failed")
    failed, _ = load(f"file://{index}#status=failed&page=8")
    assert count(failed, "item failed") == failed_total - 7 * PAGE_SIZE


def test_latest_row_of_an_output_wins(tmp_path):
    out = tmp_path / "out"
    rows = [_row(out, "a.mp4", "failed", "boom"), _row(out, "a.mp4", "ok")]
    write_gallery(rows, str(out), {}, pictures=False)
    data = (out / "index.html").read_text().split('type="application/json">')[1].split("</script>")[0]
    assert [entry["status"] for entry in json.loads(data)] == ["ok"]


def test_seconds_are_labelled_as_processing_time(tmp_path):
    """'2.3 s' beside a video read as the clip's length; it is the time spent making it."""
    from ganbatch.animate.gallery import write_gallery

    rows = [{"input": "a.png", "output": str(tmp_path / "a__happy.mp4"), "status": "ok", "frames": 50, "fps": 25.0,
             "seconds": 2.3, "error": None, "model": "demo", "target": "happy"}]
    page = Path(write_gallery(rows, str(tmp_path), {"processing time": "2.3 s"})).read_text()
    assert '"made in " + entry.seconds.toFixed(1) + " s"' in page and "processing time" in page


def test_the_driving_video_help_names_the_detector_flag():
    from click.testing import CliRunner

    from ganbatch.cli import main

    help_text = " ".join(CliRunner().invoke(main, ["animate", "--help"]).output.split())
    start = help_text.index("--driving-video")
    assert "--detector" in help_text[start:start + 200] and "crop.backend" not in help_text[start:start + 200]
