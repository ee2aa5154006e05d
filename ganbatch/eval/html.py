"""`ganbatch eval --report FILE.html`: the evaluation report as one self-contained HTML page with plots.

Plots are inline SVG drawn here (a few rectangles and polylines; no plotting library is installed, and one is not
worth a dependency for three charts); images are embedded PNGs (data: URIs), so the file works anywhere, S3
included. Sections: the summary table (model vs copy-the-input), per-AU error bars, PSNR per target, a smoothness
curve (the frame-to-frame change along a neutral -> preset clip, model vs ground truth) and sample strips (input,
the model's frame for each preset, the ground truth below).
"""
import base64
import html
import io

import numpy as np

from ganbatch.io import storage
from ganbatch.eval.report import SMOOTHNESS_ROWS, SUMMARY_ROWS

MODEL_COLOUR, COPY_COLOUR = "#3465a4", "#babdb6"
# the smoothness chart's targets (Tango palette: distinct hues, readable on white)
TARGET_COLOURS = ("#3465a4", "#cc0000", "#4e9a06", "#75507b", "#c17d11", "#06989a", "#ce5c00", "#555753")
STRIP_IDENTITIES = 2
CURVE_IDENTITIES = 3


def _escape(value) -> str:
    return html.escape(str(value))


def bar_chart(labels: list[str], series: dict[str, list[float]], colours: list[str], *, unit: str = "",
              width: int = 760, height: int = 240) -> str:
    """Grouped vertical bars as an SVG element: one group per label, one bar per series, with a legend."""
    top = max((max(values) for values in series.values() if values), default=1.0) or 1.0
    left, bottom, plot_h = 44, 40, height - 70
    group = (width - left - 10) / max(len(labels), 1)
    bar = group * 0.8 / max(len(series), 1)
    parts = _chart_frame(width, height, left, bottom, plot_h, top)
    for i, label in enumerate(labels):
        x0 = left + i * group + group * 0.1
        for j, (name, values) in enumerate(series.items()):
            h = plot_h * values[i] / top
            parts.append(f'<rect class="bar" x="{x0 + j * bar:.1f}" y="{height - bottom - h:.1f}" width="{bar:.1f}" '
                         f'height="{h:.1f}" fill="{colours[j]}"><title>{_escape(label)} {_escape(name)}: '
                         f'{values[i]:.4g}{unit}</title></rect>')
        parts.append(f'<text x="{x0 + group * 0.4:.1f}" y="{height - bottom + 14}" text-anchor="middle" '
                     f'font-size="10">{_escape(label)}</text>')
    for j, name in enumerate(series):
        parts.append(f'<rect x="{left + j * 130}" y="{height - 16}" width="10" height="10" fill="{colours[j]}"/>'
                     f'<text x="{left + j * 130 + 14}" y="{height - 7}" font-size="11">{_escape(name)}</text>')
    return "".join(parts) + "</svg>"


def _chart_frame(width: int, height: int, left: float, bottom: float, plot_h: float, top: float) -> list[str]:
    """A chart's opening <svg> tag and its five horizontal grid lines labelled 0..top (the parts to append to)."""
    parts = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             'xmlns="http://www.w3.org/2000/svg" role="img">']
    for tick in np.linspace(0, top, 5):
        y = height - bottom - plot_h * tick / top
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{tick:.3g}</text>')
    return parts


def line_chart(curves: dict[str, list[float]], colours: list[str], *, x_label: str, width: int = 760,
               height: int = 220, dashed: frozenset[str] = frozenset()) -> str:
    """Polylines over a shared x axis (the index of each value) as an SVG element, with a legend; the curves named
    in `dashed` are drawn dashed (legend too), so that two curves of one colour can be told apart."""
    top = max((max(values) for values in curves.values() if values), default=1.0) or 1.0
    count = max((len(values) for values in curves.values()), default=2)
    legend = 16 * ((len(curves) + 1) // 2)  # two legend entries per row
    left, bottom, plot_h, plot_w = 44, 24 + legend, height - 54 - legend, width - 54
    parts = _chart_frame(width, height, left, bottom, plot_h, top)
    for j, (name, values) in enumerate(curves.items()):
        points = " ".join(f"{left + plot_w * i / max(count - 1, 1):.1f},{height - bottom - plot_h * v / top:.1f}"
                          for i, v in enumerate(values))
        colour, dash = colours[j % len(colours)], ' stroke-dasharray="6 3"' if name in dashed else ""
        parts.append(f'<polyline class="curve" points="{points}" fill="none" stroke="{colour}" '
                     f'stroke-width="2"{dash}><title>{_escape(name)}</title></polyline>')
        x, y = left + (j % 2) * 340, height - legend + 16 * (j // 2)
        parts.append(f'<line x1="{x - 6}" x2="{x + 12}" y1="{y + 5}" y2="{y + 5}" stroke="{colour}" '
                     f'stroke-width="2"{dash}/><text x="{x + 16}" y="{y + 9}" font-size="11">{_escape(name)}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - bottom + 16}" text-anchor="middle" '
                 f'font-size="11">{_escape(x_label)}</text>')
    return "".join(parts) + "</svg>"


def _png(array: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def samples(engine, report: dict) -> dict:
    """Rendered material for the page, made by `engine` (the Runtime that the report's numbers came from):
    `strips` (PNG data URIs: input, the model's frame per preset, ground truth below) and `curves` (mean absolute
    frame-to-frame change, 0-255, along a neutral -> preset clip of settings.path_frames frames, for the model and
    the ground truth)."""
    from ganbatch.eval.benchmark import PRESET_TARGETS, _conditions, eval_identities, interpolation_path
    from ganbatch.render import render_clip
    from ganbatch.synth import render_face
    from ganbatch.targets.aus import NUM_AUS, expression_aus

    settings = report["settings"]
    size = report["model"]["image_size"]
    identities = eval_identities(max(STRIP_IDENTITIES, CURVE_IDENTITIES), settings["seed"])
    neutral = np.zeros(NUM_AUS)
    targets = np.stack([expression_aus(name) for name in PRESET_TARGETS]).astype(np.float64)
    strips, curves = [], {}
    for index, identity in enumerate(identities):
        face, _ = render_face(identity, neutral, size)
        if index < STRIP_IDENTITIES:
            clip = render_clip(engine, engine.info, face, _conditions(engine.info.family, identity, targets, size))
            truth = np.stack([render_face(identity, aus, size)[0] for aus in targets])
            top = np.concatenate([face, *clip.frames], axis=1)
            bottom = np.concatenate([np.full_like(face, 255), *truth], axis=1)
            strips.append(_png(np.concatenate([top, bottom], axis=0)))
        if index < CURVE_IDENTITIES:
            name = PRESET_TARGETS[index % len(PRESET_TARGETS)]
            path = interpolation_path(neutral, expression_aus(name), settings["path_frames"])
            frames = render_clip(engine, engine.info, face, _conditions(engine.info.family, identity, path, size))
            truth = np.stack([render_face(identity, aus, size)[0] for aus in path])
            for label, clip_frames in ((f"model, neutral -> {name}", frames.frames),
                                       (f"ground truth, neutral -> {name}", truth)):
                change = np.abs(np.diff(clip_frames.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))
                curves[label] = [round(float(value), 3) for value in change]
    return {"strips": strips, "curves": curves, "presets": list(PRESET_TARGETS)}


def render_report_page(report: dict, material: dict | None = None) -> str:
    """The HTML page of an evaluation report; `material` from `samples` adds the curves and strips."""
    model, settings = report["model"], report["settings"]
    rows = "".join(f"<tr><td>{_escape(label)}</td><td>{form.format(report[key])}</td>"
                   f"<td>{form.format(report[copy_key])}</td></tr>" for label, key, copy_key, form in SUMMARY_ROWS)
    smooth = report["smoothness"]
    rows_smooth = "".join(f"<tr><td>{_escape(label)}</td><td>{form.format(smooth['model'][key])}</td>"
                          f"<td>{form.format(smooth['ground_truth'][key])}</td></tr>"
                          for label, key, form in SMOOTHNESS_ROWS)
    per_au = report["per_au"]
    au_chart = bar_chart(list(per_au), {"model": [v["model"] for v in per_au.values()],
                                        "copy input": [v["copy"] for v in per_au.values()]},
                         [MODEL_COLOUR, COPY_COLOUR])
    per_expression = report["per_expression"]
    psnr_chart = bar_chart(list(per_expression), {"model": [v["psnr"] for v in per_expression.values()],
                                                  "copy input": [v["psnr_copy"] for v in per_expression.values()]},
                           [MODEL_COLOUR, COPY_COLOUR], unit=" dB")
    sections = [
        f"<h2>Summary</h2><table><tr><th></th><th>model</th><th>copy input</th></tr>{rows}</table>",
        f'<h2>AU error per action unit</h2><p>mean absolute error (0-5) of the AU regressor\'s reading against the '
        f'target, lower is better</p>{au_chart}',
        f"<h2>PSNR per target</h2><p>fidelity to the ground-truth face, higher is better</p>{psnr_chart}",
        f"<h2>Smoothness</h2><table><tr><th></th><th>model</th><th>ground truth</th></tr>{rows_smooth}</table>",
    ]
    if material:
        curves = material["curves"]
        targets = list(dict.fromkeys(name.rsplit("-> ", 1)[-1] for name in curves))  # a colour per target
        colours = [TARGET_COLOURS[targets.index(name.rsplit("-> ", 1)[-1]) % len(TARGET_COLOURS)] for name in curves]
        sections.append("<p>frame-to-frame change (mean absolute pixel difference, 0-255) along an interpolated "
                        "clip, one colour per target: the model solid, the ground truth dashed; a smooth animation "
                        "changes evenly</p>"
                        + line_chart(curves, colours, x_label="frame step",
                                     dashed=frozenset(name for name in curves if name.startswith("ground truth"))))
        strips = "".join(f'<img class="strip" src="{strip}" alt="sample strip {i + 1}">'
                         for i, strip in enumerate(material["strips"]))
        sections.append(f"<h2>Samples</h2><p>top: the input, then the model's frame for each of "
                        f"{_escape(', '.join(material['presets']))}; bottom: the ground truth</p>{strips}")
    head = (f"{_escape(model['name'])} ({_escape(model['family'])}, {model['image_size']} px): "
            f"{settings['identities']} held-out identities, {settings['pairs']} pairs, "
            f"{settings.get('seconds', '?')} s")
    return PAGE.replace("@HEAD@", head).replace("@SECTIONS@", "\n".join(sections))


def write_html_report(report: dict, out: str, *, runtime=None) -> None:
    """Write the HTML page of `report` to `out` (a path or s3:// URI); with `runtime` (the opened model that made
    the report: `ganbatch.runtimes.Runtime`), renders the smoothness curves and sample strips with it."""
    material = samples(runtime, report) if runtime is not None else None
    storage.write_bytes(out, render_report_page(report, material).encode("utf-8"),
                        content_type="text/html; charset=utf-8")


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ganbatch eval report</title>
<style>
body{font:14px system-ui,sans-serif;margin:20px auto;max-width:800px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse}td,th{padding:3px 12px;border-bottom:1px solid #ddd;text-align:right}
td:first-child{text-align:left}
.strip{display:block;max-width:100%;image-rendering:pixelated;margin:6px 0;border:1px solid #ddd}
</style></head><body>
<h1>ganbatch eval report</h1><p>@HEAD@</p>
@SECTIONS@
</body></html>
"""
