"""Training throughput on this machine: images/s per worker for each family, 1 vs 2 Ray Train workers.

    .venv/bin/python scripts/bench_train.py [--steps 12] [--size 64] [--conv-dim 32] [--res-blocks 4] [--batch 4]

Each (family, workers) pair trains a fresh run on a small synthetic data set with the real TorchTrainer (CPU
workers, gloo) and reads the run's metrics.jsonl. The first log interval (process start-up, first-touch allocations)
is left out; the rest are averaged. images/s counts the images drawn per second: a generator step draws
critic_steps global batches (GANimation 5, GANnotation 1 with its hinge default), so steps/s is printed too. The
2-vs-1 ratio is the throughput of 2 workers over that of 1, measured in the same invocation.
"""
import argparse
import json
import tempfile
from pathlib import Path

from ganbatch.cluster import ray_session
from ganbatch.jobs.train import TrainJob
from ganbatch.synth.dataset import write_dataset
from ganbatch.train import run_train


def measure(family: str, workers: int, data: str, out: str, args) -> dict:
    """Train one short run; returns its mean images/s and steps/s after the first log interval."""
    job = TrainJob(
        family=family, data=data, out=out, name=f"{family}-{workers}w",
        network={"size": args.size, "conv_dim": args.conv_dim, "res_blocks": args.res_blocks,
                 "d_conv_dim": args.conv_dim},
        batch_size=args.batch, steps=args.steps, log_every=args.log_every, checkpoint_every=args.steps,
        sample_every=args.steps, execution={"workers": workers},
    )
    result = run_train(job)
    if not result.ok:
        raise SystemExit(f"{family} on {workers} worker(s) failed: {result.error}")
    records = [json.loads(line) for line in (Path(result.outputs["run"]) / "metrics.jsonl").read_text().splitlines()]
    intervals = [r for r in records if "event" not in r][1:]
    rate = sum(r["images_per_s"] for r in intervals) / len(intervals)
    critic_steps = job.resolved_objective().critic_steps
    return {"images_per_s": rate, "per_worker": rate / workers,
            "steps_per_s": rate / (critic_steps * job.batch_size)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--log-every", type=int, default=3)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--conv-dim", type=int, default=32)
    parser.add_argument("--res-blocks", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ganbatch-bench-") as folder, ray_session(num_cpus=4):
        data = str(Path(folder) / "data")
        write_dataset(data, 8, 4, size=args.size, seed=0, contact_sheet=False)
        print(f"{args.size}px, conv_dim {args.conv_dim}, {args.res_blocks} residual blocks, global batch "
              f"{args.batch}, {args.steps} steps (first {args.log_every} left out)")
        for family in ("ganimation", "gannotation"):
            rates = {workers: measure(family, workers, data, str(Path(folder) / "runs"), args) for workers in (1, 2)}
            for workers, rate in rates.items():
                print(f"{family:12s} {workers} worker(s): {rate['images_per_s']:7.1f} images/s "
                      f"({rate['per_worker']:6.1f} per worker, {rate['steps_per_s']:5.2f} steps/s)")
            ratio = rates[2]["images_per_s"] / rates[1]["images_per_s"]
            print(f"{family:12s} 2-vs-1 worker throughput ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
