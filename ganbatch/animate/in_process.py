"""The animate stages (ganbatch.animate.stages) run in this process, without Ray: for a small local job, where starting
Ray and its workers would cost more than the job itself (on two cores, Ray's start, its workers' start and imports
and its shutdown take 10-13 s; 4 faces x 32 frames take about 6 s of work).

The same stage functions and the same rows as the Ray stream (ganbatch.animate.ray_stream), so items fail, are
recorded and summarised the same way:
- prepare runs in one helper thread, in item order, a few batches ahead of the generator (face detectors are built
  once per process, and not all of them may be called from several threads at once);
- generate runs in the calling thread: one model, opened once, over batches of prepared clips;
- encode runs on a pool of threads (ffmpeg does the work in its own process), and each row is yielded as its
  video is in place, so the first video leaves as soon as it is encoded.
What Ray adds and this leaves out: retrying a crashed worker, and stages spread over processes and nodes. A
Python pool is used rather than Ray for exactly that reason: it costs nothing to start.
"""
import concurrent.futures
import contextlib
from collections import deque
from collections.abc import Iterator

import numpy as np

from ganbatch.animate.plan import WorkItem
from ganbatch.animate.resources import StagePlan
from ganbatch.animate.generate import Generate
from ganbatch.animate.stages import RunSpec, encode, item_row, prepare

PREPARED_AHEAD = 2  # generator batches' worth of clips prepared before the generator needs them
NUMBER_COLUMNS = ("seconds", "model_seconds")


def describe(plan: StagePlan, encoders: int) -> list[str]:
    """The stages as they run in this process, one line each (for --dry-run and the log)."""
    threads = f"{plan.threads} torch threads" if plan.threads else "torch threads: the cores it may use"
    return [
        "prepare: one thread of this process, in item order (read, decode, crop, per-frame targets)",
        f"generate: one model in this process, {threads}; up to {plan.batch_size} frames of "
        f"{plan.clips_per_call} clip(s) per forward pass",
        f"encode: {encoders} thread(s) of this process (layout, paste-back, ffmpeg, atomic write or upload)",
        "driver: manifest rows as videos finish, progress, summary",
    ]


def _as_batch(rows: list[dict]) -> dict:
    """Rows as the numpy columns a Generate call takes (as Ray Data's numpy batches have them)."""
    return {key: np.array([row[key] for row in rows], dtype=float if key in NUMBER_COLUMNS else object)
            for key in rows[0]}


def _as_rows(batch: dict) -> list[dict]:
    return [{key: column[index] for key, column in batch.items()} for index in range(len(batch["status"]))]


def stream_rows(items: list[WorkItem], spec: RunSpec, plan: StagePlan, *, encoders: int) -> Iterator[dict]:
    """Each item's encoded row (as the Ray stream yields them: `output`, `row` as JSON, `model_seconds`,
    `decision`), in the order their videos are finished. An error opening the model is raised here (the driver
    fails the items left); an item's own failure is its row."""
    with contextlib.ExitStack() as stack:
        preparer = stack.enter_context(concurrent.futures.ThreadPoolExecutor(1, "ganbatch-prepare"))
        encoder = stack.enter_context(concurrent.futures.ThreadPoolExecutor(encoders, "ganbatch-encode"))
        for pool in (encoder, preparer):  # on an early exit (an error, Ctrl-C) queued work is dropped, not done
            stack.callback(pool.shutdown, wait=True, cancel_futures=True)
        waiting = iter(items)
        prepared: deque = deque()

        def prepare_ahead() -> None:
            while len(prepared) < PREPARED_AHEAD * plan.clips_per_call:
                item = next(waiting, None)
                if item is None:
                    return
                prepared.append(preparer.submit(prepare, item_row(item), spec))

        prepare_ahead()
        generate = Generate(spec.generator, plan.threads, actors_per_node=1)
        encoding: set = set()
        while prepared:
            rows = [prepared.popleft().result() for _ in range(min(plan.clips_per_call, len(prepared)))]
            prepare_ahead()
            encoding |= {encoder.submit(encode, row, spec) for row in _as_rows(generate(_as_batch(rows)))}
            finished, encoding = concurrent.futures.wait(encoding, timeout=0)
            if len(encoding) > 2 * encoders:  # clips wait for ffmpeg: let the encoders catch up before generating more
                done, encoding = concurrent.futures.wait(encoding, return_when=concurrent.futures.FIRST_COMPLETED)
                finished |= done
            yield from (future.result() for future in finished)
        for future in concurrent.futures.as_completed(encoding):
            yield future.result()
