"""`ganbatch cache`: list what the runtime cache holds (auto's decisions and the exported models they open), or
clear it (`ganbatch.runtimes.cache`)."""
import datetime

import click


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
