"""`ganbatch tune`: measure what `--runtime auto` would choose for a model on this machine, print every candidate with
its speed and quality-gate figures, and keep the decision in the runtime cache (`ganbatch.runtimes.cache`), so that
a batch started afterwards opens the chosen engine at once. It runs here, on this machine's cores: a cluster node
fills its own cache the first time its actors open a model.
"""
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
