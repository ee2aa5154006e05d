"""`ganbatch animate`: its flags, turned into an AnimateJob (with `--job`/`--set` like every job command).

Target flags build the job's `targets`, replacing a `--job` manifest's: each `--expression` is one target (with
`--au` values laid over its preset), `--au` alone is one target (over the source AUs), and `--aus-csv`, `--keyframes`,
`--landmarks` and `--driving-video` each add one. Timing flags (`--fps`, `--duration`, `--frames`, `--easing`,
`--pingpong`, `--input-first`) and `--name` apply to the targets built from flags. Runner modules load only when the
command runs, so `ganbatch --help` stays fast.
"""
import click

from ganbatch.cli_help import GroupedCommand, choice, preset_names
from ganbatch.cli_jobs import JOB_PARAMS, execute, field_help, flag_values, job_options, load_or_exit
from ganbatch.jobs.animate import AnimateJob, CropSpec, OutputSpec, TargetSpec

ANIMATE_FLAGS = {
    "inputs": "inputs", "model": "model", "out": "out", "recursive": "recursive", "source_aus": "source_aus",
    "crop": "crop.mode", "detector": "crop.backend", "margin": "crop.margin", "pasteback": "crop.pasteback",
    "feather": "crop.feather", "format": "output.format", "crf": "output.crf", "layout": "output.layout",
    "size": "output.size", "preview": "output.preview", "report": "output.report", "address": "execution.address", "workers": "execution.workers",
    "gpus_per_worker": "execution.gpus_per_worker", "cpus_per_worker": "execution.cpus_per_worker",
    "batch_size": "execution.batch_size", "device": "execution.device", "precision": "execution.precision",
    "runtime": "execution.runtime",
    "overwrite": "overwrite", "allow_failures": "allow_failures", "trust_pickle": "trust_pickle",
}
SOURCE_FLAGS = {"aus_csv": "aus_csv", "keyframes": "keyframes", "landmarks": "landmarks",
                "driving_video": "driving_video"}
SHARED_TARGET_FLAGS = {"fps": "fps", "duration": "duration", "frames": "frames", "easing": "easing",
                       "pingpong": "pingpong", "input_first": "input_first", "aus_csv_mode": "aus_csv_mode",
                       "name": "name"}
TARGET_LABEL = "target flags"
# --help sections (parameters in no section are listed under "other options").
ANIMATE_SECTIONS = {
    "inputs": ["model", "recursive", "source_aus", "trust_pickle"],
    "targets": ["expressions", "aus", "aus_csv", "aus_csv_mode", "keyframes", "landmarks", "driving_video", "name"],
    "timing": ["fps", "duration", "frames", "easing", "pingpong", "input_first"],
    "faces": ["crop", "detector", "margin", "pasteback", "feather"],
    "output": ["out", "format", "crf", "layout", "size", "preview", "report", "overwrite", "allow_failures"],
    "execution": ["address", "workers", "gpus_per_worker", "cpus_per_worker", "batch_size", "device", "precision",
                  "runtime"],
    "job": JOB_PARAMS,
}


def _au_values(assignments: list[str]) -> dict[str, str]:
    """`AU12=3.5` items as {name: value}; the job schema checks the names and ranges."""
    values = {}
    for item in assignments:
        name, separator, value = item.partition("=")
        if not separator:
            raise click.BadParameter(f"'{item}': expected NAME=VALUE, e.g. AU12=3.5", param_hint="--au")
        values[name.strip()] = value.strip()
    return values


def targets_from_flags(ctx: click.Context) -> list[dict]:
    """The targets the target flags describe (empty when none was given); see the module doc."""
    given = {dotted: value for dotted, value, _ in flag_values(ctx, {"expressions": "expression", "aus": "aus"})}
    sources = [{"expression": expression} for expression in given.get("expression", [])]
    aus = _au_values(given.get("aus", []))
    if aus:
        sources = [{**source, "aus": aus} for source in sources] or [{"aus": aus}]
    sources += [{dotted: value} for dotted, value, _ in flag_values(ctx, SOURCE_FLAGS)]
    shared = {dotted: value for dotted, value, _ in flag_values(ctx, SHARED_TARGET_FLAGS)}
    if not sources:
        if shared:
            raise click.UsageError(f"{', '.join('--' + key.replace('_', '-') for key in shared)} apply to targets "
                                   "given by flags (--expression, --au, ...); in a --job manifest, set them per "
                                   "target, e.g. --set 'targets[0].fps=30'")
        return []
    if "name" in shared and len(sources) > 1:
        raise click.UsageError("--name names a single target; several were given")
    return [{**source, **shared} for source in sources]


@click.command(cls=GroupedCommand, sections=ANIMATE_SECTIONS)
@click.argument("inputs", nargs=-1, metavar="INPUT...")
@click.option("--model", metavar="CKPT|s3://...|demo", help=field_help(AnimateJob, "model"))
@click.option("--out", metavar="DIR|s3://...", help=field_help(AnimateJob, "out"))
@click.option("--recursive", is_flag=True, help=field_help(AnimateJob, "recursive"))
@click.option("--expression", "expressions", multiple=True, metavar="NAME[:INTENSITY]",
              help=field_help(TargetSpec, "expression", f"presets: {', '.join(preset_names())}; repeatable: one video "
                                                        "per expression"))
@click.option("--au", "aus", multiple=True, metavar="AUn=VALUE",
              help="AU intensity (0-5) over the source AUs, or over each --expression's preset; repeatable")
@click.option("--aus-csv", metavar="CSV", help=field_help(TargetSpec, "aus_csv"))
@click.option("--aus-csv-mode", type=choice(TargetSpec, "aus_csv_mode"), help=field_help(TargetSpec, "aus_csv_mode"))
@click.option("--keyframes", metavar="FILE.yaml", help="keyframes YAML (the schedule format)")
@click.option("--landmarks", metavar="FILE", help=field_help(TargetSpec, "landmarks"))
@click.option("--driving-video", metavar="VIDEO", help=field_help(TargetSpec, "driving_video"))
@click.option("--name", help="output label of the single target given by flags")
@click.option("--source-aus", metavar="CSV|PKL", help=field_help(AnimateJob, "source_aus"))
@click.option("--fps", type=float, help=field_help(TargetSpec, "fps"))
@click.option("--duration", type=float, help=field_help(TargetSpec, "duration"))
@click.option("--frames", type=int, help=field_help(TargetSpec, "frames"))
@click.option("--easing", type=choice(TargetSpec, "easing"), help=field_help(TargetSpec, "easing"))
@click.option("--pingpong/--no-pingpong", default=None, help=field_help(TargetSpec, "pingpong"))
@click.option("--input-first/--no-input-first", default=None, help=field_help(TargetSpec, "input_first"))
@click.option("--crop", type=choice(CropSpec, "mode"), help=field_help(CropSpec, "mode"))
@click.option("--detector", type=choice(CropSpec, "backend"), help=field_help(CropSpec, "backend"))
@click.option("--margin", type=float, help=field_help(CropSpec, "margin"))
@click.option("--pasteback/--no-pasteback", default=None, help=field_help(CropSpec, "pasteback"))
@click.option("--feather", type=float, help=field_help(CropSpec, "feather"))
@click.option("--format", type=choice(OutputSpec, "format"), help=field_help(OutputSpec, "format"))
@click.option("--crf", type=int, help=field_help(OutputSpec, "crf"))
@click.option("--layout", type=choice(OutputSpec, "layout"), help=field_help(OutputSpec, "layout"))
@click.option("--size", type=int, help=field_help(OutputSpec, "size"))
@click.option("--preview/--no-preview", default=None, help=field_help(OutputSpec, "preview"))
@click.option("--report/--no-report", default=None, help=field_help(OutputSpec, "report"))
@click.option("--address", help=field_help(AnimateJob, "execution.address"))
@click.option("--workers", type=int, help=field_help(AnimateJob, "execution.workers"))
@click.option("--gpus-per-worker", type=float, help=field_help(AnimateJob, "execution.gpus_per_worker"))
@click.option("--cpus-per-worker", type=float, help=field_help(AnimateJob, "execution.cpus_per_worker"))
@click.option("--batch-size", type=int, help=field_help(AnimateJob, "execution.batch_size"))
@click.option("--device", type=choice(AnimateJob, "execution.device"), help=field_help(AnimateJob, "execution.device"))
@click.option("--precision", type=choice(AnimateJob, "execution.precision"), help=field_help(AnimateJob, "execution.precision"))
@click.option("--runtime", type=choice(AnimateJob, "execution.runtime"),
              help=field_help(AnimateJob, "execution.runtime"))
@click.option("--overwrite", is_flag=True, help=field_help(AnimateJob, "overwrite"))
@click.option("--allow-failures", is_flag=True, help=field_help(AnimateJob, "allow_failures"))
@click.option("--trust-pickle", is_flag=True, help=field_help(AnimateJob, "trust_pickle"))
@job_options(kind="animate")
@click.pass_context
def animate(ctx, **_):
    """Animate face photos (INPUT: files, folders, globs, s3:// prefixes, .txt/.jsonl lists) along targets into
    videos under --out, one per (photo, target), listed in a JSONL manifest; runs on Ray (local or --address).
    Exits 0 only when every video was made (or --allow-failures)."""
    targets = targets_from_flags(ctx)
    values = flag_values(ctx, ANIMATE_FLAGS) + ([("targets", targets, TARGET_LABEL)] if targets else [])
    loaded = load_or_exit(ctx.params.get("manifest"), kind="animate", values=values,
                          overrides=ctx.params.get("overrides", ()))
    execute(loaded, ctx.params.get("dry_run", False))
