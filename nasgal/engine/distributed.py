"""Data-parallel runs under ``torchrun``: the process group, ranks, and the few collectives the
stages need, all from :mod:`torch.distributed`.

A process started by ``torchrun`` (or ``srun torchrun``) finds ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK`` (and the rendezvous address) in its environment. :func:`session` joins the
process group once (``nccl`` for CUDA tensors, ``gloo`` for CPU tensors) and leaves it at the
end; nested sessions reuse the outer one, so ``nasgal run`` keeps one group across its stages.
Without those variables, or with a world of one process, nothing is initialised and every
helper here is a no-op: a single-process run is exactly what it was.

What the stages use:

- :func:`world_size`, :func:`rank`, :func:`is_main`: rank 0 is the one that writes and reports;
- :func:`data_parallel`: torch's ``DistributedDataParallel`` around a module (training);
- :func:`average_`: the mean of gradients over processes where DDP does not fit (the search's
  α and supernet steps, GAL's critic, generator and masks), one all-reduce per call;
- :func:`sum_`: metric sums (loss, correct, count) over processes, so that a sharded
  evaluation gives the numbers of a single-process one;
- :func:`broadcast_buffers`: rank 0's batch-norm statistics to every process;
- :func:`sync_batchnorm`: batch norm over the global batch (torch's ``SyncBatchNorm`` on
  CUDA; on CPU, where torch has none, :class:`GlobalBatchNorm2d`);
- :func:`agree`: run a phase on every rank; when it fails on any, every rank raises, so no
  process waits forever in a collective that another one never reaches.
"""

from __future__ import annotations

import contextlib
import datetime
import inspect
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from ..errors import NasgalError

T = TypeVar("T")

#: How long a process waits for the others at a collective (or at the rendezvous).
TIMEOUT = datetime.timedelta(minutes=30)

LAUNCH_HINT = ("start nasgal with torchrun (it sets WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT), "
               "or unset WORLD_SIZE to run as one process")


@dataclass(frozen=True)
class Launch:
    """Where this process sits in a torchrun launch."""

    world: int  #: processes in the run (all nodes)
    rank: int  #: this process, 0 .. world-1
    local_rank: int  #: this process on its node: the index of its GPU


def launch_from_env(env: Mapping[str, str] | None = None) -> Launch | None:
    """The launch that the environment describes (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``),
    or ``None`` when ``WORLD_SIZE`` is not set (not under torchrun). Inconsistent values are a
    :class:`~nasgal.errors.NasgalError` naming them."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env:
        return None
    values: dict[str, int] = {}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        text = env.get(key)
        if text is None:
            raise NasgalError(f"WORLD_SIZE is set ({env['WORLD_SIZE']}) but {key} is not", hint=LAUNCH_HINT)
        try:
            values[key] = int(text)
        except ValueError:
            raise NasgalError(f"{key} must be a whole number, got {text!r}", hint=LAUNCH_HINT) from None
    world, rank, local = values["WORLD_SIZE"], values["RANK"], values["LOCAL_RANK"]
    if world < 1:
        raise NasgalError(f"WORLD_SIZE must be at least 1, got {world}", hint=LAUNCH_HINT)
    if not 0 <= rank < world:
        raise NasgalError(f"RANK {rank} is outside 0..{world - 1} (WORLD_SIZE {world})", hint=LAUNCH_HINT)
    if not 0 <= local <= rank:
        raise NasgalError(f"LOCAL_RANK {local} does not fit RANK {rank} (it must lie in 0..{rank})", hint=LAUNCH_HINT)
    return Launch(world, rank, local)


def active() -> bool:
    """Whether this process is one of several in an initialised process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    """Whether this process writes the run's files and reports progress (rank 0)."""
    return rank() == 0


def local_rank() -> int:
    launch = launch_from_env() if active() else None
    return launch.local_rank if launch else 0


def backend() -> str:
    """``gloo`` for CPU tensors, and ``nccl`` for CUDA tensors where CUDA exists."""
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"


@contextlib.contextmanager
def session() -> Iterator[None]:
    """Join the torchrun process group for the duration (see the module docstring); a no-op
    without torchrun, for one process, or inside another session."""
    if dist.is_available() and dist.is_initialized():
        yield
        return
    launch = launch_from_env()
    if launch is None or launch.world == 1:
        yield
        return
    if not dist.is_available():
        raise NasgalError("this torch build has no torch.distributed, so nasgal cannot run under torchrun",
                          hint="install a torch build with distributed support, or run one process")
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise NasgalError(f"WORLD_SIZE is set ({launch.world}) but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not",
                          hint=LAUNCH_HINT)
    if torch.cuda.is_available():
        if launch.local_rank >= torch.cuda.device_count():
            raise NasgalError(
                f"LOCAL_RANK {launch.local_rank} asks for GPU {launch.local_rank}, but this node has "
                f"{torch.cuda.device_count()}",
                hint="start at most one process per GPU on each node (torchrun --nproc-per-node)",
            )
        torch.cuda.set_device(launch.local_rank)
    try:
        dist.init_process_group(backend(), rank=launch.rank, world_size=launch.world, timeout=TIMEOUT)
    except (RuntimeError, ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NasgalError(f"cannot join the process group of {launch.world} processes: {first}",
                          hint="check the rendezvous address and port, and that every process was started") from None
    try:
        yield
    finally:
        dist.destroy_process_group()


def device_for(name: str) -> str:
    """The device a process of a distributed run uses for the device setting ``name``: the GPU
    of its local rank for ``auto`` (with CUDA) and ``cuda``; ``cpu`` stays ``cpu``. An explicit
    ``cuda:N`` is refused: torchrun gives each process its GPU."""
    if not active():
        return name
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return "cpu"
    if name in ("auto", "cuda"):
        return f"cuda:{local_rank()}"
    raise NasgalError(f"device {name!r} under torchrun: each process uses the GPU of its local rank",
                      hint="give --device cuda (or auto, or cpu) when running under torchrun")


def local_batch(batch: int, what: str = "--batch-size") -> int:
    """The images per process of a global batch of ``batch``; refused when it does not divide."""
    world = world_size()
    if batch % world:
        raise NasgalError(
            f"{what} {batch} is the global batch and does not divide among {world} processes",
            hint=f"give {what} a multiple of {world} (each process then takes {what} / {world} images per step)",
        )
    return batch // world


def check_images(count: int, what: str = "training images") -> None:
    """Refuse a run of more processes than ``count`` images: every process needs data."""
    world = world_size()
    if count < world:
        raise NasgalError(f"{world} processes but only {count} {what}: every process needs at least one per step",
                          hint="start fewer processes (torchrun --nproc-per-node) or use more images")


# Collectives ------------------------------------------------------------------------------------
def sum_(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over processes, in place (unchanged for one process)."""
    if active():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def average_(tensors: Sequence[torch.Tensor | None]) -> None:
    """Replace each tensor by its mean over processes, in place, with one all-reduce of a flat
    buffer (``None`` entries are skipped; unchanged for one process)."""
    if not active():
        return
    ts = [t for t in tensors if t is not None]
    if not ts:
        return
    flat = torch.cat([t.reshape(-1) for t in ts])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat.div_(dist.get_world_size())
    offset = 0
    for t in ts:
        n = t.numel()
        t.copy_(flat[offset : offset + n].view_as(t))
        offset += n


def average_grads_(params: Sequence[torch.Tensor]) -> None:
    """The mean over processes of the gradients of ``params`` (those that have one)."""
    average_([p.grad for p in params])


@torch.no_grad()
def broadcast_buffers(module: nn.Module) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every process."""
    if not active():
        return
    for b in module.buffers():
        dist.broadcast(b, src=0)


def barrier() -> None:
    if active():
        dist.barrier()


def agree(phase: Callable[[], T], what: str) -> T:
    """Run ``phase`` on this process and learn whether it failed on any: then every process
    raises (this one its own error, the others one that names the failing process), instead of
    waiting at a later collective. ``phase`` itself must not use collectives."""
    if not active():
        return phase()
    error: BaseException | None = None
    result = None
    try:
        result = phase()
    except Exception as e:  # noqa: BLE001 - told to every process, then raised again
        error = e
    failed = torch.zeros(dist.get_world_size(), dtype=torch.int32)
    failed[dist.get_rank()] = 1 if error is not None else 0
    dist.all_reduce(failed, op=dist.ReduceOp.SUM)  # a CPU tensor: gloo, on any backend
    if error is not None:
        raise error
    bad = [r for r, f in enumerate(failed.tolist()) if f]
    if bad:
        raise NasgalError(f"process {bad[0]} of {dist.get_world_size()} failed in {what}; its error message says why")
    return result  # type: ignore[return-value]


def check_same(value: int, what: str, hint: str | None = None) -> None:
    """Refuse to go on when the processes disagree about ``value`` (e.g. the epochs a resume
    found: a run directory that not every node sees)."""
    if not active():
        return
    t = torch.tensor([value, -value], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)  # [max, -min]
    high, low = int(t[0]), -int(t[1])
    if high != low:
        raise NasgalError(f"the processes disagree about {what} ({low} on some, {high} on others)", hint=hint)


def share_flag(value: bool) -> bool:
    """Rank 0's ``value`` on every process."""
    if not active():
        return value
    t = torch.tensor([int(value)], dtype=torch.int32)
    dist.broadcast(t, src=0)
    return bool(t.item())


# Modules ----------------------------------------------------------------------------------------
def data_parallel(module: nn.Module, device: torch.device, *, find_unused: bool = False,
                  broadcast_buffers: bool = True) -> nn.Module:
    """``module`` in torch's ``DistributedDataParallel`` (the module itself for one process).

    The wrapper is for the forward pass of training steps; the module keeps its own state dict
    (checkpoints hold the unwrapped keys). DDP makes the weights equal at construction (rank 0's)
    and averages the gradients in the backward pass."""
    if not active():
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    # torch 2.13 renamed the forward-time buffer broadcast (the old name still works, with a warning).
    params = inspect.signature(DistributedDataParallel).parameters
    key = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
    options: dict[str, Any] = {"device_ids": ids, "find_unused_parameters": find_unused, key: broadcast_buffers}
    return DistributedDataParallel(module, **options)


class _SumOverProcesses(torch.autograd.Function):
    """``dist.all_reduce`` (sum) with a backward: the gradient of a sum over processes is the
    sum over processes of the gradients."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        out = t.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """Batch norm whose training-mode statistics cover the batches of every process (for CPU
    tensors, where torch's ``SyncBatchNorm`` does not run).

    Each process sums its images' values and squares per channel; an all-reduce adds the sums
    of all processes, and its backward adds the gradients of all processes, so the gradients equal those of one process
    normalising the whole batch. Running statistics are updated as ``nn.BatchNorm2d`` does
    (momentum, unbiased variance); evaluation uses them and communicates nothing. State-dict
    keys are those of ``nn.BatchNorm2d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()):
            return super().forward(x)
        momentum = self.momentum
        counter = self.num_batches_tracked
        if self.track_running_stats and counter is not None:
            counter.add_(1)
            if momentum is None:
                momentum = 1.0 / float(counter)
        xf = x.float()
        c = x.shape[1]
        # Sums of x - shift, with the running mean (the same on every process) as the shift: the
        # variance as E[d²] - E[d]² then loses no precision to a large mean.
        shift = (self.running_mean.detach().float().clone() if self.running_mean is not None
                 else torch.zeros(c, device=x.device)).view(1, c, 1, 1)
        d = xf - shift
        count = torch.tensor([x.numel() / c], device=x.device, dtype=torch.float32)  # images × pixels
        stats = torch.cat([d.sum((0, 2, 3)), (d * d).sum((0, 2, 3)), count])  # [2C + 1]
        stats = _SumOverProcesses.apply(stats)
        n = stats[-1]
        shifted = stats[:c] / n
        mean = shift.view(c) + shifted
        var = (stats[c : 2 * c] / n - shifted * shifted).clamp_min(0)  # biased: what normalises
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                unbiased = var * n / (n - 1).clamp_min(1)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum or 0.0)
                self.running_var.lerp_(unbiased.detach().to(self.running_var.dtype), momentum or 0.0)
        shape = (1, c, 1, 1)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def _global_bn(bn: nn.BatchNorm2d) -> nn.Module:
    new = GlobalBatchNorm2d(bn.num_features, eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                            track_running_stats=bn.track_running_stats)
    like = next(iter(bn.state_dict().values()), None)
    if like is not None:
        new.to(like.device)
    new.load_state_dict(bn.state_dict())
    new.train(bn.training)
    return new


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` with its 2-d batch norms normalising over the global batch (a no-op for one
    process): torch's ``SyncBatchNorm`` on CUDA, :class:`GlobalBatchNorm2d` elsewhere."""
    if not active():
        return module
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, GlobalBatchNorm2d):
            setattr(module, name, _global_bn(child))
        else:
            sync_batchnorm(child, device)
    return module


__all__ = [
    "GlobalBatchNorm2d", "Launch", "active", "agree", "average_", "average_grads_", "barrier", "broadcast_buffers",
    "check_images", "check_same", "data_parallel", "device_for", "is_main", "launch_from_env", "local_batch", "rank",
    "session", "share_flag", "sum_", "sync_batchnorm", "world_size",
]
