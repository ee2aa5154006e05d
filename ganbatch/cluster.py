"""Ray connection for a command: attach to a cluster, or run an embedded local Ray for the command's duration; and
what resources the cluster (or this machine) offers."""
import contextlib
import logging
import os
import signal
import socket
import threading
from typing import Optional

from ganbatch.errors import JobError


def local_cpus() -> int:
    """The cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


REACH_SECONDS = 10.0  # how long a cluster address may take to answer a TCP connection
# Ray starts a local instance by itself when one of its APIs is called with no connection (read once, when ray is
# imported). A command connects on purpose, in ray_session, never implicitly: after Ctrl-C had ended a command's
# session, Ray Data's executor thread still called Ray and so began a second local Ray in the dying process, whose
# start-up errors (and once a segfault) came after the command's last line.
NO_IMPLICIT_INIT = {"RAY_ENABLE_AUTO_CONNECT": "0"}


def import_ray():
    """The ray module, imported with its implicit start-up turned off (NO_IMPLICIT_INIT; a user's own setting, or a
    Ray imported earlier in this process, stands)."""
    for name, value in NO_IMPLICIT_INIT.items():
        os.environ.setdefault(name, value)
    import ray

    return ray


class ClusterUnreachable(JobError):
    """The Ray cluster address names no cluster that answers (Ray itself would retry for minutes)."""


def check_reachable(address: str, timeout: float = REACH_SECONDS) -> None:
    """ClusterUnreachable, in one line naming the address, when nothing accepts a TCP connection at its host and
    port (`HOST:PORT`, `ray://HOST:PORT`); `auto`, `local` and addresses without a port are left to Ray."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__.replace("Error", "").lower() or str(error)
        raise ClusterUnreachable(f"cannot reach the Ray cluster at {address} ({reason}); is it running there "
                                 "(`ray status` on its head node), and is the address (--address, execution.address "
                                 "or RAY_ADDRESS) right?") from None


@contextlib.contextmanager
def ctrl_c_deferred():
    """Ctrl-C pressed inside the block takes effect as it ends (the SIGINT handler before it then runs). Around
    `ray.init`: interrupted midway, it left Ray's core worker half made, and the process crashed (SIGSEGV) at exit
    after the command's last line. In threads other than the main one (no signal handlers there), or where the
    handler was not set from Python (it could not be put back), it does nothing."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield
        return
    pressed = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pressed:
            signal.raise_signal(signal.SIGINT)


@contextlib.contextmanager
def ray_session(address: Optional[str] = None, *, num_cpus: Optional[int] = None):
    """Use the Ray already initialised in this process, else connect to `address` (or `RAY_ADDRESS`), else start a
    local Ray in-process (a new one, never another command's or a `ray start` instance found on the machine); a Ray
    started here is shut down on exit, and goes with this process should it be killed (ganbatch.reaper).

    A local Ray gets `num_cpus` CPUs (default: the cores this process may use, not the machine's count) and only
    what a command needs: no dashboard, warnings only in its logs. (Ray 2.60's raylet always starts its runtime-env
    agent; no option turns it off.)"""
    ray = import_ray()
    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    options = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": True}
    from ganbatch.logs import native_ray_lines_hidden, quiet_ray_options
    from ganbatch.reaper import start_reaper

    options.update(quiet_ray_options())  # Ray's logs and worker output only with -v (see ganbatch.logs)
    if address is None:  # "local": a new instance of our own, even when another Ray runs on this machine
        address, options["num_cpus"] = "local", num_cpus if num_cpus is not None else local_cpus()
    else:
        check_reachable(address)
    with native_ray_lines_hidden():  # the core worker's own error lines (see ganbatch.logs) only with -v
        reaper = None
        try:
            with ctrl_c_deferred():
                ray.init(address=address, **options)
            reaper = start_reaper() if address == "local" else None  # a killed driver takes its local Ray along
            yield
        finally:
            ray.shutdown()
            if reaper is not None:
                reaper.release()


def cluster_gpus() -> float:
    """GPUs the connected Ray cluster offers (0 when none)."""
    import ray

    return float(ray.cluster_resources().get("GPU", 0))


def cluster_resources() -> dict:
    """The connected cluster's `CPU` and `GPU` totals, `cpu_nodes` (its live nodes with CPUs) and `node_cpus`
    (the CPUs of the smallest of them) and `largest_node_cpus`."""
    import ray

    totals = ray.cluster_resources()
    nodes = [node for node in ray.nodes() if node.get("Alive") and node.get("Resources", {}).get("CPU", 0) > 0]
    node_cpus = min((float(node["Resources"]["CPU"]) for node in nodes), default=float(totals.get("CPU", 0)))
    largest = max((float(node["Resources"]["CPU"]) for node in nodes), default=float(totals.get("CPU", 0)))
    return {"CPU": float(totals.get("CPU", 0)), "GPU": float(totals.get("GPU", 0)), "cpu_nodes": max(1, len(nodes)),
            "node_cpus": node_cpus, "largest_node_cpus": largest}


def local_resources() -> dict:
    """What a local Ray started by ray_session would offer, without starting it (as cluster_resources)."""
    import torch

    cpus = float(local_cpus())
    return {"CPU": cpus, "GPU": float(torch.cuda.device_count()), "cpu_nodes": 1, "node_cpus": cpus,
            "largest_node_cpus": cpus}
