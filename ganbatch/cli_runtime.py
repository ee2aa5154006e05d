"""`ganbatch tune` and `ganbatch cache`: the runtime cache from the command line (`ganbatch.runtimes.cache`).

`tune` measures what `--runtime auto` would choose for a model on this machine, prints every candidate with its
speed and quality-gate figures, and keeps the decision, so that a batch started afterwards opens the chosen engine
at once. `cache` lists what the cache holds and clears it. Both run here, on this machine's cores: a cluster node
fills its own cache the first time its actors open a model.
"""
import datetime
import os

import click

DEFAULT_BATCH = 16  # the animate job's default frames per generator call: a tuned decision is kept per batch size


@click.command("tune")
@click.option("--model", required=True, metavar="CKPT|s3://...|demo", help="the model to tune for this machine")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=DEFAULT_BATCH, show_default=True,
              help="frames per generator call it will run at (animate's --batch-size)")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--threads", type=click.IntRange(1), default=None, help="CPU threads (default: every core here)")
@click.option("--trust-pickle", is_flag=True, help="allow checkpoints whose unpickling runs code")
def tune(model, batch_size, device, threads, trust_pickle):
    """Measure every engine and precision for MODEL on this machine, print them with the quality gate's figures,
    and keep the fastest that passes in the runtime cache for `--runtime auto` (the default)."""
    from ganbatch.errors import JobError
    from ganbatch.models.checkpoint import CheckpointError
    from ganbatch.runtimes import RuntimeCache, RuntimeUnavailableError, open_runtime
    from ganbatch.runtimes.auto import describe_table

    cache = RuntimeCache()
    try:
        runtime = open_runtime(model, device=device, threads=threads or len(os.sched_getaffinity(0)),
                               batch_size=batch_size, trust_pickle=trust_pickle, cache=cache, retune=True)
    except (CheckpointError, RuntimeUnavailableError, ValueError) as error:
        raise JobError(f"tune: {error}") from None
    click.echo(f"{runtime.auto.machine.describe()}; batch {batch_size}")
    for line in describe_table(runtime.auto):
        click.echo(line)
    click.echo(f"chosen: {runtime.name} {runtime.precision}, kept in {cache.root}")


@click.command("cache")
@click.option("--clear", is_flag=True, help="remove every decision, exported model and compiled engine")
def cache_command(clear):
    """Show what the runtime cache holds (auto's decisions and the exported models they open), or clear it.
    Its folder: GANBATCH_CACHE, else the user cache folder; its size bound: GANBATCH_CACHE_MAX_MB."""
    from ganbatch.runtimes import RuntimeCache

    cache = RuntimeCache()
    if clear:
        freed = cache.clear()
        click.echo(f"cleared {cache.root} ({freed / 1024**2:.1f} MB)")
        return
    entries = cache.entries()
    click.echo(f"{cache.root}: {len(entries)} entries, {cache.size() / 1024**2:.1f} MB "
               f"(bound {cache.max_bytes / 1024**2:.0f} MB)")
    for entry in entries:
        used = datetime.datetime.fromtimestamp(entry.used).strftime("%Y-%m-%d %H:%M")
        model = entry.key.get("model", "")[:24]
        if entry.kind == "decision":
            machine = entry.key.get("machine", {})
            where = machine.get("gpu") or " ".join([machine.get("capability", ""), *machine.get("flags", [])])
            what = f"{' '.join(entry.content['chosen'])} for batch {entry.key.get('batch_size')} on {where}"
        else:
            what = f"{entry.key.get('format')} {entry.key.get('precision')}, {entry.size / 1024**2:.1f} MB"
        click.echo(f"  {entry.kind:8s} {entry.name}  {model}  {what}  (used {used})")
