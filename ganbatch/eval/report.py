"""The evaluation report as a text table (for the terminal) and as JSON (for files and S3)."""
import json

from ganbatch.io import storage

# (label, model key, copy-baseline key, number format) of the summary rows.
SUMMARY_ROWS = (
    ("PSNR (dB)", "psnr", "psnr_copy", "{:.2f}"),
    ("SSIM", "ssim", "ssim_copy", "{:.4f}"),
    ("AU MAE, 17 AUs (0-5)", "au_mae", "au_mae_copy", "{:.3f}"),
    ("AU MAE, moving AUs (0-5)", "au_mae_moving", "au_mae_moving_copy", "{:.3f}"),
    ("MAE outside expression (0-255)", "outside_mae", "outside_mae_copy", "{:.2f}"),
    ("sharpness vs true target", "sharpness", "sharpness_copy", "{:.3f}"),
    ("landmark error (x eye dist.)", "landmark_error", "landmark_error_copy", "{:.4f}"),
)
SMOOTHNESS_ROWS = (
    ("monotone AU steps", "monotone_fraction", "{:.3f}"),
    ("Spearman AU vs time", "time_correlation", "{:.3f}"),
    ("max / mean frame change", "max_over_mean_change", "{:.2f}"),
)


def _row(label, cells, label_width=26, cell_width=12):
    return f"{label:<{label_width}}" + "".join(f"{cell:>{cell_width}}" for cell in cells)


def format_report(report: dict) -> str:
    """A plain-text summary of an evaluation report: model vs copy baseline, per expression, smoothness, regressor."""
    model, settings = report["model"], report["settings"]
    lines = [
        f"model {model['name']} ({model['family']}, {model['image_size']} px): {settings['identities']} held-out "
        f"identities (identity seed {settings['identity_seed']}), {settings['pairs']} expression pairs",
        "",
        _row("", ["model", "copy input"]),
    ]
    lines += [_row(label, [form.format(report[key]), form.format(report[copy_key])])
              for label, key, copy_key, form in SUMMARY_ROWS]

    lines += ["", _row("per target", ["PSNR", "copy", "SSIM", "copy", "AU MAE", "copy", "pairs"], 14, 9)]
    for name, values in report["per_expression"].items():
        lines.append(_row(name, [f"{values['psnr']:.2f}", f"{values['psnr_copy']:.2f}", f"{values['ssim']:.3f}",
                                 f"{values['ssim_copy']:.3f}", f"{values['au_mae']:.3f}",
                                 f"{values['au_mae_copy']:.3f}", str(values["pairs"])], 14, 9))

    lines += ["", _row(f"smoothness ({settings['path_frames']} frames)", ["model", "ground truth"], 26, 14)]
    smoothness = report["smoothness"]
    lines += [_row(label, [form.format(smoothness["model"][key]), form.format(smoothness["ground_truth"][key])],
                   26, 14)
              for label, key, form in SMOOTHNESS_ROWS]

    regressor = report["au_regressor"]
    validation = regressor["validation"]
    lines += ["", f"AU regressor on this run's ground-truth targets (what a perfect model scores): MAE "
                  f"{regressor['mae_on_eval_ground_truth']:.3f} over 17 AUs, "
                  f"{regressor['mae_moving_on_eval_ground_truth']:.3f} over moving AUs"]
    if validation:
        lines.append(f"AU regressor on its validation identities: MAE {validation['mae_per_au']['mean']:.3f} "
                     f"(trivial mean-AU predictor {validation['trivial_mae_per_au']['mean']:.3f})")
    return "\n".join(lines)


def write_report(report: dict, out: str) -> None:
    """Write `report` as indented JSON to `out`, a local path or an s3:// URI."""
    storage.write_bytes(out, (json.dumps(report, indent=1) + "\n").encode("utf-8"), content_type="application/json")
