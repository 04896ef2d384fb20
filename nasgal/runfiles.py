"""The file names of a run directory, in one place: the engine writes them, and the views
(``nasgal plot``, reports) and commands read them by these names."""

from __future__ import annotations

CONFIG = "config.json"  #: the run's record: dataset, spec hash, settings
CHECKPOINT = "checkpoint.pt"  #: the state after the last completed epoch
METRICS_LOG = "metrics.jsonl"  #: one row per epoch (train, search)
PRUNE_LOG = "prune_log.jsonl"  #: one row per epoch (prune)
RESULTS = "metrics.json"  #: the final results
ENV = "env.json"  #: versions, device, threads, seed
NETWORK = "network.json"  #: the network spec a train or prune run works on
SPACE = "space.json"  #: the search space a search run works on
WEIGHTS = "weights.pt"  #: a training run's final weights
PRUNED = "pruned.json"  #: a pruning run's pruned spec
GENOTYPE = "genotype.json"  #: a search run's latest derived genotype
GENOTYPES = "genotypes"  #: a search run's genotype after each epoch (epoch_XXX.json)
ALPHA_HISTORY = "alpha_history.json"
TENSORBOARD = "tensorboard"  #: TensorBoard event files, when asked for (--tensorboard)  #: a search run's α after each epoch

__all__ = ["ALPHA_HISTORY", "CHECKPOINT", "CONFIG", "ENV", "GENOTYPE", "GENOTYPES", "METRICS_LOG", "NETWORK",
           "PRUNED", "PRUNE_LOG", "RESULTS", "SPACE", "TENSORBOARD", "WEIGHTS"]
