"""The runtime that ``train``, ``search`` and ``prune`` share, as peers on it.

- :mod:`~nasgal.engine.rundir`: run directories (file names, the lock, atomic JSON, checkpoints,
  run identity).
- :mod:`~nasgal.engine.loop`: the one epoch loop with one resume scheme (:class:`Stage`, :func:`run_stage`).
- :mod:`~nasgal.engine.step`: capture (torch.compile, CUDA graphs), device-side metrics, evaluation.
- :mod:`~nasgal.engine.optim`: torch's fused optimizers with device-tensor learning rates, the schedule.
- :mod:`~nasgal.engine.precision`: the autocast region of fp32 or bf16.
- :mod:`~nasgal.engine.data`: the train/validation/test splits of a dataset.
- :mod:`~nasgal.engine.config`: the base of every stage's settings.
- :mod:`~nasgal.engine.distributed`: runs under torchrun (process group, ranks, DDP, gradient
  averaging, batch norm over all processes).
"""

# Submodules are imported by name (``from nasgal.engine.loop import run_stage``): the settings
# base must stay importable without torch, for the command line's fast start.
