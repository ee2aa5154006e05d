"""Ray connection for a command: attach to a cluster, or run an embedded local Ray for the command's duration."""
import contextlib
import logging
import os
from typing import Optional


@contextlib.contextmanager
def ray_session(address: Optional[str] = None, *, num_cpus: Optional[int] = None):
    """Use the Ray already initialised in this process, else connect to `address` (or `RAY_ADDRESS`), else start a
    local Ray in-process; a Ray started here is shut down on exit. `num_cpus` only applies to a local start."""
    import ray

    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    options = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": True}
    if address is None and num_cpus is not None:
        options["num_cpus"] = num_cpus
    ray.init(address=address, **options)
    try:
        yield
    finally:
        ray.shutdown()


def cluster_gpus() -> float:
    """GPUs the connected Ray cluster offers (0 when none)."""
    import ray

    return float(ray.cluster_resources().get("GPU", 0))
