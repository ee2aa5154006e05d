"""Data-parallel plumbing for GAN training: identical replicas and averaged gradients over torch.distributed.

DistributedDataParallel cannot differentiate through the gradient penalty (a double backward) and syncs once per
backward, while a GAN step runs several backward passes through two networks. As StyleGAN2-ADA/StyleGAN3 do, each
worker back-propagates its own shard, then the flattened gradients of the network being updated are summed with one
all_reduce and divided by the number of workers before the optimiser step. With equal shards that is the gradient
of the whole batch. Everything here is a no-op in a single process.
"""
import torch
import torch.distributed as dist
from torch import nn


def world_size() -> int:
    """Number of workers in the process group (1 without one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def broadcast_module(module: nn.Module) -> None:
    """Copy worker 0's parameters and buffers to every worker."""
    if world_size() > 1:
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def average_gradients(module: nn.Module) -> None:
    """Replace each parameter's gradient by its mean over the workers (missing gradients count as zeros)."""
    if world_size() == 1:
        return
    parameters = [p for p in module.parameters() if p.requires_grad]
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
    flat = torch.cat([p.grad.flatten() for p in parameters])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for parameter in parameters:
        count = parameter.numel()
        parameter.grad.copy_(flat[offset:offset + count].view_as(parameter))
        offset += count


def mean_over_workers(values: dict[str, float], device) -> dict[str, float]:
    """The mean of each value over the workers (every worker must call this with the same keys)."""
    if world_size() == 1 or not values:
        return dict(values)
    keys = sorted(values)
    stacked = torch.tensor([float(values[key]) for key in keys], dtype=torch.float64, device=device)
    dist.all_reduce(stacked)
    return dict(zip(keys, (stacked / world_size()).tolist()))
