"""Markdown tables for a model card: losses over a run (metrics.jsonl) and an evaluation report (ganbatch eval JSON).

    .venv/bin/python scripts/model_card_tables.py --metrics out/demo_gannotation/runs/demo-gannotation/metrics.jsonl \
        --eval docs/demo_gannotation_eval.json

Loss rows: the logged steps closest to --at (default: 50, then every fifth of the run, and the last), with the
run's images/s; evaluation: model vs copy for each summary figure, then per target expression.
"""
import argparse
import json
from pathlib import Path

EVAL_ROWS = (
    ("PSNR (dB), higher is better", "psnr", "{:.2f}"),
    ("SSIM, higher is better", "ssim", "{:.3f}"),
    ("landmark error (x inter-ocular distance), lower is better", "landmark_error", "{:.4f}"),
    ("AU MAE (0-5 scale, 17 AUs)", "au_mae", "{:.3f}"),
    ("AU MAE on the AUs that move by >= 1", "au_mae_moving", "{:.2f}"),
    ("sharpness in the expression region (1 = the true target's)", "sharpness", "{:.3f}"),
    ("mean abs. error outside the expression regions (0-255)", "outside_mae", "{:.2f}"),
)


def loss_table(path: Path, at: list[int] | None) -> str:
    """The losses at a few logged steps as a Markdown table (every unweighted term the run logged)."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    logged = [r for r in records if "event" not in r]
    last = logged[-1]["step"]
    wanted = at or sorted({50, *(last * k // 5 for k in range(1, 5)), last})
    rows = [min(logged, key=lambda r, step=step: abs(r["step"] - step)) for step in wanted]
    keys = [k for k in logged[-1] if k[:2] in ("d_", "g_")]
    lines = ["| step | " + " | ".join(keys) + " | images/s |", "|---:|" + "---:|" * (len(keys) + 1)]
    for row in {r["step"]: r for r in rows}.values():
        cells = [f"{row.get(k, float('nan')):.4g}" for k in keys]
        lines.append(f"| {row['step']} | " + " | ".join(cells) + f" | {row['images_per_s']:.1f} |")
    return "\n".join(lines)


def eval_tables(path: Path) -> str:
    """Model vs copy for the summary figures, then per target expression, as Markdown tables."""
    report = json.loads(path.read_text())
    lines = ["| | model | copy baseline |", "|---|---:|---:|"]
    for label, key, form in EVAL_ROWS:
        if key in report:
            lines.append(f"| {label} | {form.format(report[key])} | {form.format(report[key + '_copy'])} |")
    lines += ["", "| expression | PSNR | PSNR copy | SSIM | SSIM copy | landmark err. | copy | pairs |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, values in report["per_expression"].items():
        lines.append(f"| {name} | {values['psnr']:.2f} | {values['psnr_copy']:.2f} | {values['ssim']:.3f} | "
                     f"{values['ssim_copy']:.3f} | {values.get('landmark_error', float('nan')):.4f} | "
                     f"{values.get('landmark_error_copy', float('nan')):.4f} | {values['pairs']} |")
    regressor = report["au_regressor"]
    lines += ["", f"Read-back floor (the same measurement on the true targets): landmark error "
                  f"{regressor.get('landmark_error_on_eval_ground_truth', float('nan')):.4f}, AU MAE "
                  f"{regressor['mae_on_eval_ground_truth']:.3f}. Evaluation took {report['settings']['seconds']} s."]
    return "\n".join(lines)


def main() -> None:
    """Parse the arguments and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=Path, help="a run's metrics.jsonl")
    parser.add_argument("--eval", type=Path, help="a ganbatch eval JSON report")
    parser.add_argument("--at", type=int, nargs="*", help="steps of the loss table")
    args = parser.parse_args()
    if args.metrics:
        print(loss_table(args.metrics, args.at), end="\n\n")
    if args.eval:
        print(eval_tables(args.eval))


if __name__ == "__main__":
    main()
