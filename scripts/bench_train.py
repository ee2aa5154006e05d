"""Training throughput before and after the small-model changes, measured in one run: images/s per setting.

    .venv/bin/python scripts/bench_train.py [--steps 12] [--log-every 3] [--threads 2] [--workers 1]

Rows, each a fresh short run of the real `ganbatch train` path (Ray Train TorchTrainer, 1 CPU worker with --threads
torch threads) on one small synthetic data set (8 identities x 4 images, 64 px):

- readme: the README's small example `--size 64 --conv-dim 32 --res-blocks 4` with the published objective
  (WGAN-GP, 5 critic steps per generator step), batch 8.
  old = how that command trained before: the critic at its fixed defaults (64 channels, 6 stride-2 layers:
  44.8 M parameters) and fp32 (`--d-conv-dim 64 --d-layers 6 --precision fp32`);
  new = the same command with no extra flags (the critic follows the generator and the size: 32 channels,
  5 layers; precision auto).
- demo: the bundled GANimation demo's settings (jobs/demo_model.yaml: critic 16 x 6 layers, 1 critic step,
  paired pixel term), batch 8. old = fp32; new = precision auto.
- gannotation: `--family gannotation` at the README's sizes with the published objective, batch 8.
  old = critic 64 x 6, fp32; new = no extra flags.

images/s counts every batch drawn (a GANimation step with 5 critic steps draws 5 batches), so compare rows of one
setting, not across settings; steps/s is printed too. The first log interval (start-up, first-touch allocations)
is left out and the rest averaged. "auto" resolves per machine (`ganbatch.train.precision`): the machine line
printed first says what this CPU offers. A last block times the data path alone (building one batch: decode,
augment, targets) with the whole-set uint8 array cache and with the per-image LRU cache it replaces for small sets,
next to the step time, to show whether data loading can stall a step.
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

from ganbatch.cluster import ray_session
from ganbatch.jobs.train import TrainJob
from ganbatch.families import get_family
from ganbatch.synth.dataset import write_dataset
from ganbatch.train import batches as batches_module
from ganbatch.train import find_training_data, run_train
from ganbatch.train.batches import BatchMaker
from ganbatch.train.precision import describe_machine, resolve_precision

README = {"size": 64, "conv_dim": 32, "res_blocks": 4}
OLD_CRITIC = {"d_conv_dim": 64, "d_layers": 6}  # the critic's fixed defaults before it followed the generator
DEMO = {"network": {**README, "d_conv_dim": 16, "d_layers": 6},
        "objective": {"lambda_pixel": 300, "paired_fraction": 0.75, "critic_steps": 1}}

# (setting, label, family, job fields)
ROWS = (
    ("readme", "old", "ganimation", {"network": {**README, **OLD_CRITIC}, "execution": {"precision": "fp32"}}),
    ("readme", "new", "ganimation", {"network": README}),
    ("demo", "old", "ganimation", {**DEMO, "execution": {"precision": "fp32"}}),
    ("demo", "new", "ganimation", DEMO),
    ("gannotation", "old", "gannotation", {"network": {**README, **OLD_CRITIC}, "execution": {"precision": "fp32"}}),
    ("gannotation", "new", "gannotation", {"network": README}),
)


def measure(family: str, fields: dict, data: str, out: str, name: str, args) -> dict:
    """Train one short run; returns its mean images/s and steps/s after the first log interval, and its job."""
    execution = {"workers": args.workers, "cpus_per_worker": args.threads, "threads_per_worker": args.threads,
                 **fields.get("execution", {})}
    job = TrainJob(family=family, data=data, out=out, name=name, batch_size=args.batch, steps=args.steps,
                   log_every=args.log_every, checkpoint_every=args.steps, sample_every=args.steps,
                   **{**fields, "execution": execution})
    result = run_train(job)
    if not result.ok:
        raise SystemExit(f"{name} failed: {result.error}")
    records = [json.loads(line) for line in (Path(result.outputs["run"]) / "metrics.jsonl").read_text().splitlines()]
    intervals = [r for r in records if "event" not in r][1:]
    rate = sum(r["images_per_s"] for r in intervals) / len(intervals)
    return {"images_per_s": rate, "steps_per_s": rate / (job.resolved_objective().critic_steps * job.batch_size),
            "job": job}


def describe(job: TrainJob) -> str:
    net = job.network
    return (f"critic {net.critic_width()}x{net.critic_layers()}, {job.resolved_objective().critic_steps} critic "
            f"step(s), {resolve_precision(job.execution.precision, 'cpu')}")


def time_batches(data_root: str, family: str, whole_array: bool, count: int, size: int, batch: int) -> float:
    """Mean ms to build one batch over `count` batches (the first epoch's decoding included)."""
    data = find_training_data(data_root, family)
    saved = batches_module.ARRAY_CACHE_BYTES
    batches_module.ARRAY_CACHE_BYTES = saved if whole_array else 0
    try:
        maker = BatchMaker(data, Path(data.root), get_family(family), size, seed=0, global_batch=batch,
                           critic_steps=1, jitter=0.05)
        started = time.perf_counter()
        for step in range(count):
            maker.batch(step, 0)
    finally:
        batches_module.ARRAY_CACHE_BYTES = saved
    return 1000 * (time.perf_counter() - started) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--log-every", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the worker (and its CPUs)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=None, help="settings to run (readme, demo, gannotation)")
    args = parser.parse_args()
    print(describe_machine())
    rows = [row for row in ROWS if args.only is None or row[0] in args.only]
    with tempfile.TemporaryDirectory(prefix="ganbatch-bench-") as folder, \
            ray_session(num_cpus=max(2, args.workers * args.threads)):
        data = str(Path(folder) / "data")
        write_dataset(data, 8, 4, size=64, seed=0, contact_sheet=False)
        print(f"64 px, batch {args.batch}, {args.workers} worker(s) x {args.threads} thread(s), {args.steps} steps "
              f"(first {args.log_every} left out)")
        results = {}
        for setting, label, family, fields in rows:
            rate = measure(family, fields, data, str(Path(folder) / "runs"), f"{setting}-{label}", args)
            results[setting, label] = rate
            print(f"{setting:12s} {label}: {rate['images_per_s']:7.1f} images/s ({rate['steps_per_s']:5.2f} steps/s; "
                  f"{describe(rate['job'])})", flush=True)
        for setting in dict.fromkeys(row[0] for row in rows):
            if (setting, "old") in results and (setting, "new") in results:
                ratio = results[setting, "new"]["images_per_s"] / results[setting, "old"]["images_per_s"]
                print(f"{setting:12s} new / old: {ratio:.2f}x")
        for family in ("ganimation", "gannotation"):
            array_ms, lru_ms = (time_batches(data, family, whole, 40, 64, args.batch) for whole in (True, False))
            print(f"data path {family:12s}: {array_ms:6.1f} ms per batch of {args.batch} (whole-set array), "
                  f"{lru_ms:6.1f} ms (LRU)")


if __name__ == "__main__":
    main()
