"""DEST/index.html: a gallery of a batch, to look at every video without ffmpeg know-how.

`write_gallery(rows, out_uri, summary)` takes the manifest rows (`animate.manifest`: input, output, status, frames,
fps, seconds, error, model, target; the latest row per output is shown) and writes, under the destination only:

- `index.html`: counts and timing at the top (`summary`, plus the counts of the rows), a filter by status, and
  the entries as cards: the video playable inline (`<video>` with a poster frame; `<img>` for gif, the first frame
  for png folders), its input photo, the target, the status and, for failed items, the error. The rows are embedded
  as JSON and shown PAGE_SIZE per page by a few lines of inline JavaScript, so 10,000 items make one 3 MB page that
  opens at once; `#status=failed&page=2` in the address selects a filter and a page.
- `_gallery/posters/...jpg`: one poster frame per video (ffmpeg, the same binary `io.video` uses), and
  `_gallery/inputs/...jpg`: a small copy of each input photo (inputs may live outside the destination or in a
  private bucket).

Every link is relative to index.html, so the folder works where it is copied or served (a local folder, an
`s3://` prefix behind a website endpoint or presigned access). Posters and thumbnails are made in a thread pool;
one that cannot be made leaves its card without it (the video still plays).
"""
import concurrent.futures
import hashlib
import html
import io
import json
import logging
import os
import posixpath
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from ganbatch.io import storage

log = logging.getLogger(__name__)

PAGE_SIZE = 200
GALLERY_FOLDER = "_gallery"
INDEX = "index.html"
THUMBNAIL_HEIGHT = 160
INLINE_VIDEO_SUFFIXES = (".mp4", ".webm")  # played inline by the gallery's <video> (gif/png frames: <img>)


def relative_to(uri: str, base: str) -> str | None:
    """`uri` as a path relative to the folder or prefix `base`, or None when it lies outside it."""
    base = str(base).rstrip("/")
    uri = str(uri)
    if storage.is_s3(base) != storage.is_s3(uri):
        return None
    if not storage.is_s3(base):
        base, uri = storage.absolute(base), storage.absolute(uri)
    if not uri.startswith(base + "/"):
        return None
    return uri[len(base) + 1:]


def _latest(rows: list[dict]) -> list[dict]:
    """The last row of each output, in the order outputs first appear."""
    latest: dict[str, dict] = {}
    for row in rows:
        latest[row.get("output") or f"#{len(latest)}"] = row
    return list(latest.values())


def _poster_name(relative: str) -> str:
    return f"{GALLERY_FOLDER}/posters/{relative}.jpg"


def _input_name(uri: str) -> str:
    stem = posixpath.splitext(posixpath.basename(str(uri).rstrip("/")))[0] or "input"
    return f"{GALLERY_FOLDER}/inputs/{stem[:60]}-{hashlib.sha1(str(uri).encode()).hexdigest()[:10]}.jpg"


def _ffmpeg_poster(video: Path, poster: Path) -> None:
    """The first frame of `video` as a JPEG THUMBNAIL_HEIGHT pixels high."""
    from ganbatch.io.video import ffmpeg_executable

    subprocess.run([ffmpeg_executable(), "-v", "error", "-y", "-i", str(video), "-frames:v", "1",
                    "-vf", f"scale=-2:{THUMBNAIL_HEIGHT}", "-q:v", "4", str(poster)],
                   check=True, capture_output=True, timeout=60)


def _write_poster(video_uri: str, poster_uri: str) -> bool:
    with tempfile.TemporaryDirectory(prefix="ganbatch-poster-") as folder:
        poster = Path(folder) / "poster.jpg"
        with storage.local_copy(video_uri) as video:
            _ffmpeg_poster(video, poster)
        if storage.is_s3(poster_uri):
            storage.upload_file(poster, poster_uri)
        else:
            _move(poster, poster_uri)
    return True


def _move(path: Path, destination: str) -> None:
    target = Path(destination.removeprefix("file://"))
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)


def _write_thumbnail(image_uri: str, thumbnail_uri: str) -> bool:
    from PIL import Image

    with Image.open(io.BytesIO(storage.read_bytes(image_uri))) as image:
        image = image.convert("RGB")
        image.thumbnail((4 * THUMBNAIL_HEIGHT, THUMBNAIL_HEIGHT))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85)
    storage.write_bytes(thumbnail_uri, buffer.getvalue(), content_type="image/jpeg")
    return True


def _attempt(function, *args) -> bool:
    try:
        return function(*args)
    except Exception as error:  # noqa: BLE001 - a missing poster never stops the gallery; logged
        log.debug(f"gallery: no picture for {args[0]}: {type(error).__name__}: {error}")
        return False


def _entry(row: dict, out_uri: str) -> tuple[dict, list]:
    """The JSON entry of a row for the page, and the pictures (function, source, destination) it needs."""
    output = row.get("output") or ""
    relative = relative_to(output, out_uri) if output else None
    status = row.get("status") or "unknown"
    entry = {"status": status, "target": row.get("target") or "", "input": posixpath.basename(str(row.get("input"))),
             "error": row.get("error") or "", "frames": row.get("frames"), "seconds": row.get("seconds"),
             "name": posixpath.basename(output.rstrip("/")) or "", "video": None, "still": None, "poster": None,
             "thumb": None}
    jobs = []
    if relative is not None and status in ("ok", "skipped"):
        suffix = posixpath.splitext(relative)[1].lower()
        if suffix in INLINE_VIDEO_SUFFIXES:
            entry["video"] = relative
            entry["poster"] = _poster_name(relative)
            jobs.append((_write_poster, output, storage.join(out_uri, entry["poster"]), "poster"))
        elif suffix == ".gif":
            entry["still"] = relative
        else:  # a png folder: its first frame
            entry["still"] = f"{relative}/frame_00000.png"
    if row.get("input"):
        entry["thumb"] = _input_name(row["input"])
        jobs.append((_write_thumbnail, row["input"], storage.join(out_uri, entry["thumb"]), "thumb"))
    return entry, jobs


def write_gallery(rows: list[dict], out_uri: str, summary: dict, *, pictures: bool = True, workers: int = 4) -> str:
    """Write DEST/index.html (and its pictures) for the manifest `rows` of the destination `out_uri`; returns the
    URI of index.html. `summary`: label -> value pairs shown at the top (e.g. model, seconds, frames/s), beside the
    counts per status; `pictures`: make poster frames and input thumbnails (False: names only)."""
    entries, wanted = [], []  # wanted: (entry, key, destination)
    pictures_to_make = {}  # destination -> (function, source)
    for row in _latest(rows):
        entry, needed = _entry(row, out_uri)
        entries.append(entry)
        for function, source, destination, key in needed:
            pictures_to_make.setdefault(destination, (function, source))
            wanted.append((entry, key, destination))
    made = {}
    if pictures and pictures_to_make:
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {destination: pool.submit(_attempt, function, source, destination)
                       for destination, (function, source) in pictures_to_make.items()}
            made = {destination: future.result() for destination, future in futures.items()}
    for entry, key, destination in wanted:
        if not made.get(destination):
            entry[key] = None
    counts = Counter(entry["status"] for entry in entries)
    index = storage.join(out_uri, INDEX)
    page = render_page(entries, counts, summary)
    storage.write_bytes(index, page.encode("utf-8"), content_type="text/html; charset=utf-8")
    return index


def _json_for_script(data) -> str:
    """JSON safe inside a <script> element (no `</script>` or `<!--` can end it)."""
    return json.dumps(data, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e").replace(
        "&", "\\u0026")


def _status_order(item: tuple[str, int]) -> tuple[int, str]:
    order = ("ok", "failed", "skipped")
    return (order.index(item[0]) if item[0] in order else len(order), item[0])


def render_page(entries: list[dict], counts: Counter, summary: dict) -> str:
    """The HTML of index.html (see the module doc)."""
    total = sum(counts.values())
    facts = [f"<b>{total}</b> videos"] + [f"<b>{counts[status]}</b> {status}" for status in ("ok", "failed",
                                                                                             "skipped")
                                          if counts[status]]
    facts += [f"{html.escape(str(label))}: <b>{html.escape(str(value))}</b>" for label, value in summary.items()]
    filters = "".join(f'<button data-status="{status}">{status} ({count})</button>'
                      for status, count in [("all", total)] + sorted(counts.items(), key=_status_order))
    return PAGE.replace("@FACTS@", " &middot; ".join(facts)).replace("@FILTERS@", filters).replace(
        "@PAGE_SIZE@", str(PAGE_SIZE)).replace("@DATA@", _json_for_script(entries))


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>ganbatch gallery</title>
<style>
body{font:14px system-ui,sans-serif;margin:0;background:#f4f4f6;color:#222}
header{background:#fff;padding:12px 18px;border-bottom:1px solid #ddd;position:sticky;top:0;z-index:1}
h1{font-size:18px;margin:0 0 6px}
.facts{margin-bottom:8px}
button{font:inherit;margin-right:4px;padding:3px 10px;border:1px solid #bbb;background:#fff;border-radius:12px;
cursor:pointer}
button.on{background:#333;color:#fff;border-color:#333}
#pager{margin-left:12px}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:12px;padding:14px 18px}
.item{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px;overflow:hidden}
.item.failed{border-color:#d33}
.pair{display:flex;gap:6px;align-items:flex-start}
.pair video,.pair img.out{width:160px;height:160px;object-fit:contain;background:#111;border-radius:3px}
.pair img.in{width:56px;height:56px;object-fit:cover;border-radius:3px}
.name{font-weight:600;word-break:break-all;margin-top:4px}
.status{display:inline-block;padding:0 6px;border-radius:8px;font-size:12px;background:#ddd}
.status.ok{background:#cfc}.status.failed{background:#fcc}.status.skipped{background:#eee}
.error{color:#a00;font-size:12px;white-space:pre-wrap;word-break:break-word;margin-top:4px}
.none{width:160px;height:160px;display:flex;align-items:center;justify-content:center;background:#eee;color:#888}
</style></head><body>
<header><h1>ganbatch gallery</h1><div class="facts">@FACTS@</div>
<div>@FILTERS@<span id="pager"><button id="prev">&lsaquo; previous</button><span id="where"></span>
<button id="next">next &rsaquo;</button></span></div></header>
<main id="items"></main>
<script id="data" type="application/json">@DATA@</script>
<script>
"use strict";
const ENTRIES = JSON.parse(document.getElementById("data").textContent);
const PAGE_SIZE = @PAGE_SIZE@;
const state = {status: "all", page: 1};
function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  state.status = params.get("status") || "all";
  state.page = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);
}
function el(tag, attributes, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) if (value !== null) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}
function card(entry) {
  const item = el("div", {"class": "item " + entry.status});
  const pair = el("div", {"class": "pair"});
  if (entry.video) {
    pair.appendChild(el("video", {src: entry.video, poster: entry.poster, controls: "", loop: "", muted: "",
                                  playsinline: "", preload: "none"}));
  } else if (entry.still) {
    pair.appendChild(el("img", {"class": "out", src: entry.still, alt: entry.name, loading: "lazy"}));
  } else {
    pair.appendChild(el("div", {"class": "none"}, entry.status === "failed" ? "failed" : "no video"));
  }
  if (entry.thumb) pair.appendChild(el("img", {"class": "in", src: entry.thumb, alt: "input " + entry.input,
                                                title: "input " + entry.input, loading: "lazy"}));
  item.appendChild(pair);
  item.appendChild(el("div", {"class": "name"}, entry.name || entry.input));
  const line = el("div");
  line.appendChild(el("span", {"class": "status " + entry.status}, entry.status));
  const details = [" " + entry.input, "\\u2192 " + entry.target];
  if (entry.frames) details.push(entry.frames + " frames");
  if (entry.seconds) details.push("made in " + entry.seconds.toFixed(1) + " s");
  line.appendChild(document.createTextNode(details.join(" ")));
  item.appendChild(line);
  if (entry.error) item.appendChild(el("div", {"class": "error"}, entry.error));
  return item;
}
function render() {
  const shown = state.status === "all" ? ENTRIES : ENTRIES.filter(e => e.status === state.status);
  const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
  state.page = Math.min(state.page, pages);
  const items = document.getElementById("items");
  items.replaceChildren(...shown.slice((state.page - 1) * PAGE_SIZE, state.page * PAGE_SIZE).map(card));
  document.getElementById("where").textContent = " page " + state.page + " of " + pages + " ";
  document.getElementById("prev").disabled = state.page <= 1;
  document.getElementById("next").disabled = state.page >= pages;
  for (const button of document.querySelectorAll("button[data-status]"))
    button.classList.toggle("on", button.dataset.status === state.status);
}
function go(status, page) { location.hash = "status=" + status + "&page=" + page; }
for (const button of document.querySelectorAll("button[data-status]"))
  button.addEventListener("click", () => go(button.dataset.status, 1));
document.getElementById("prev").addEventListener("click", () => go(state.status, state.page - 1));
document.getElementById("next").addEventListener("click", () => go(state.status, state.page + 1));
window.addEventListener("hashchange", () => { readHash(); render(); });
readHash();
render();
</script></body></html>
"""
