"""Noticing a stream that cannot make progress: rows drained in a helper thread while the driver watches the cluster.

Ray Data waits without end for resources that never come: after a node is lost, generator actors with explicit CPU
reservations may restart on the nodes left and hold every CPU there, so no prepare or encode task is ever scheduled
and nothing says so. `watched_rows` raises StreamStalled when no row has arrived for `stall_seconds` while, the
whole time, no CPU was free for one stage task (`ray.available_resources()`); a long item with CPUs to spare, or a
busy cluster whose tasks still come and go, is never taken for a stall.
"""
import queue
import threading
import time
from collections.abc import Iterator

POLL_SECONDS = 2.0


class StreamStalled(RuntimeError):
    """The stream made no progress for the stall time while no CPU was free for its tasks."""


def _free_cpus() -> float:
    import ray

    return float(ray.available_resources().get("CPU", 0.0))


def watched_rows(rows: Iterator, *, task_cpus: float, stall_seconds: float) -> Iterator:
    """The items of `rows` (Ray Data's row iterator, drained in a daemon thread), in order; StreamStalled as
    described in the module doc; an error of the iterator is raised here."""
    handoff: queue.Queue = queue.Queue(maxsize=64)
    done = object()

    def drain() -> None:
        try:
            for row in rows:
                handoff.put(row)
            handoff.put(done)
        except BaseException as error:  # noqa: BLE001 - handed to the driver thread, which raises it
            handoff.put(error)

    threading.Thread(target=drain, name="ganbatch-rows", daemon=True).start()
    last_row = starved_since = time.monotonic()
    while True:
        try:
            item = handoff.get(timeout=POLL_SECONDS)
        except queue.Empty:
            now = time.monotonic()
            if _free_cpus() >= task_cpus:
                starved_since = now
            elif now - max(last_row, starved_since) >= stall_seconds:
                raise StreamStalled(
                    f"no video finished for {stall_seconds:g} s while no CPU was free for the prepare and encode "
                    f"tasks ({task_cpus:g} CPU each): the generator actors hold every CPU left (after a lost node?); "
                    "re-run to make the rest (videos made are skipped), with fewer --workers or --cpus-per-worker, "
                    "or leave them unset") from None
            continue
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        last_row = time.monotonic()
        yield item
