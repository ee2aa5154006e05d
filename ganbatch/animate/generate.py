"""Stage 2 of the animate run, generate: the one stage that loads torch and a model (ganbatch.animate.stages holds the
other two, which run without them). Ray Data runs it as an actor pool; the in-process stream calls it directly."""
import logging
import os
import time

import numpy as np
import torch

from ganbatch.io import storage
from ganbatch.animate.item import describe_error
from ganbatch.animate.stages import GeneratorSpec, pack, unpack
from ganbatch.render import render_clips
from ganbatch.runtimes import open_runtime

log = logging.getLogger(__name__)


class Generate:
    """Stage 2 (an actor of the pool, or this process): one Runtime, opened once; each call generates the frames of
    a batch of rows' clips together (`render.render_clips`) and passes failed rows through."""

    def __init__(self, spec: GeneratorSpec, threads: int | None, actors_per_node: int):
        started = time.monotonic()
        device = spec.device if spec.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        if device == "cpu" and threads is None:
            threads = max(1, len(os.sched_getaffinity(0)) // actors_per_node)
        with storage.retry_budget(spec.storage_retry_seconds):
            self.runtime = open_runtime(spec.model, runtime=spec.runtime, device=device, precision=spec.precision,
                                        threads=threads, trust_pickle=spec.trust_pickle, batch_size=spec.batch_size)
        self.spec = spec
        self.description = self.runtime.describe()
        # reported with its rows, for the driver's -v lines: the start-up breakdown and auto's candidates
        self.model_seconds = time.monotonic() - started
        self.decision = self.runtime.auto.describe() if self.runtime.auto is not None else ""
        log.debug("generator (pid %d): %s", os.getpid(), self.description)

    def __call__(self, batch: dict) -> dict:
        """The batch (numpy columns) with each ok row's `clip` replaced by its generated frames."""
        started = time.monotonic()
        for column in ("status", "error"):  # fixed-width string arrays would truncate what is written into them
            batch[column] = batch[column].astype(object)
        batch["runtime"] = np.full(len(batch["status"]), self.description, dtype=object)
        batch["model_seconds"] = np.full(len(batch["status"]), self.model_seconds)
        batch["decision"] = np.full(len(batch["status"]), self.decision, dtype=object)
        todo = [index for index, status in enumerate(batch["status"]) if status == "ok"]
        clips = [unpack(batch["clip"][index]) for index in todo]
        try:
            made = render_clips(self.runtime, clips, batch_size=self.spec.batch_size,
                                return_maps=self.spec.return_maps)
        except Exception as error:  # noqa: BLE001 - the batch's items fail with the reason, the stream goes on
            for index in todo:
                batch["status"][index], batch["error"][index] = "failed", describe_error(error)
                batch["clip"][index] = batch["placement"][index] = b""
            return batch
        elapsed = time.monotonic() - started
        total = sum(len(clip.targets) for clip in clips) or 1
        for index, clip, frames in zip(todo, clips, made):
            batch["clip"][index] = pack(frames)
            batch["seconds"][index] += elapsed * len(clip.targets) / total  # the clip's share of the calls
        return batch
