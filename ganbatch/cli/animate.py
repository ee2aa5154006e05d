"""`ganbatch animate`: its flags, turned into an AnimateJob (with `--job`/`--set` like every job command).

Target flags build the job's `targets`, replacing a `--job` manifest's: each `--expression` is one target (with
`--au` values laid over its preset), `--au` alone is one target (over the source AUs), and `--aus-csv`, `--keyframes`,
`--landmarks` and `--driving-video` each add one. Timing flags (`--fps`, `--duration`, `--frames`, `--easing`,
`--pingpong`, `--input-first`) and `--name` apply to the targets built from flags. Runner modules load only when the
command runs, so `ganbatch --help` stays fast.
"""
import click

from ganbatch.cli.help import GroupedCommand, preset_names
from ganbatch.cli.jobs import JOB_PARAMS, execute, flag_values, job_options
from ganbatch.jobs.load import load_job
from ganbatch.cli.options import Flag, SchemaOptions
from ganbatch.jobs.animate import TARGET_SOURCES, AnimateJob

TARGET = "targets."  # the prefix of the fields that target flags fill (each target's, see the module doc)
ANIMATE = SchemaOptions(AnimateJob, {
    "inputs": [Flag("model", metavar="CKPT|s3://...|demo"), "recursive", Flag("source_aus", metavar="CSV|PKL"),
               "trust_pickle"],
    "targets": [
        Flag("targets.expression", multiple=True, metavar="NAME[:INTENSITY]",
             extra=f"presets: {', '.join(preset_names())}; repeatable: one video per expression"),
        Flag("targets.aus", name="--au", multiple=True, metavar="AUn=VALUE",
             help="AU intensity (0-5) over the source AUs, or over each --expression's preset; repeatable"),
        Flag("targets.aus_csv", metavar="CSV"), "targets.aus_csv_mode",
        Flag("targets.keyframes", metavar="FILE.yaml", help="keyframes YAML (the schedule format)"),
        Flag("targets.landmarks", metavar="FILE"), Flag("targets.driving_video", metavar="VIDEO"),
        Flag("targets.name", help="output label of the single target given by flags"),
    ],
    "timing": ["targets.fps", "targets.duration", "targets.frames", "targets.easing", "targets.pingpong",
               "targets.input_first"],
    "faces": [Flag("crop.mode", name="--crop"), Flag("crop.backend", name="--detector"), "crop.margin",
              "crop.pasteback", "crop.feather"],
    "output": [Flag("out", metavar="DIR|s3://..."), "output.format", "output.crf", "output.layout", "output.size",
               "output.preview", "output.report", "overwrite", "allow_failures"],
    "execution": ["execution.address", "execution.workers", "execution.gpus_per_worker", "execution.cpus_per_worker",
                  "execution.batch_size", "execution.device", "execution.precision", "execution.runtime",
                  "execution.executor"],
})
TARGET_LABEL = "target flags"


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
    given = {dotted.removeprefix(TARGET): (value, label) for dotted, value, label in flag_values(ctx, ANIMATE.fields)
             if dotted.startswith(TARGET)}
    expressions, _ = given.pop("expression", ([], None))
    aus = _au_values(given.pop("aus", ([], None))[0])
    sources = [{"expression": expression} for expression in expressions]
    if aus:
        sources = [{**source, "aus": aus} for source in sources] or [{"aus": aus}]
    sources += [{key: value} for key, (value, _) in given.items() if key in TARGET_SOURCES]
    shared = {key: value for key, (value, _) in given.items() if key not in TARGET_SOURCES}
    if not sources:
        if shared:
            raise click.UsageError(f"{', '.join(given[key][1] for key in shared)} apply to targets given by flags "
                                   "(--expression, --au, ...); in a --job manifest, set them per target, e.g. "
                                   "--set 'targets[0].fps=30'")
        return []
    if "name" in shared and len(sources) > 1:
        raise click.UsageError("--name names a single target; several were given")
    return [{**source, **shared} for source in sources]


@click.command(cls=GroupedCommand, sections={**ANIMATE.sections, "job": JOB_PARAMS})
@click.argument("inputs", nargs=-1, metavar="INPUT...")
@ANIMATE
@job_options(kind="animate")
@click.pass_context
def animate(ctx, **_):
    """Animate face photos (INPUT: files, folders, globs, s3:// prefixes, .txt/.jsonl lists) along targets into
    videos under --out, one per (photo, target), listed in a JSONL manifest; runs on Ray (local or --address), or a
    small local job in this process. Exits 0 only when every video was made (or --allow-failures)."""
    targets = targets_from_flags(ctx)
    job_flags = {name: dotted for name, dotted in ANIMATE.fields.items() if not dotted.startswith(TARGET)}
    values = flag_values(ctx, {"inputs": "inputs", **job_flags}) + ([("targets", targets, TARGET_LABEL)] if targets
                                                                      else [])
    loaded = load_job(ctx.params.get("manifest"), kind="animate", values=values,
                      overrides=tuple(ctx.params.get("overrides", ())))
    execute(loaded, ctx.params.get("dry_run", False))
