"""GAL pruning (DARTS-GAL): learn sparse node masks against a frozen teacher, emit a pruned spec."""

from .budget import Selection, candidates, rank_nodes, select_nodes
from .config import PruneConfig, resolve_prune_config
from .critic import Critic
from .fista import MaskFista
from .gal import load_teacher, prune, weights_fingerprint
from .inherit import inherit_weights
from .step import GALStep

__all__ = [
    "Critic",
    "GALStep",
    "MaskFista",
    "PruneConfig",
    "Selection",
    "candidates",
    "inherit_weights",
    "load_teacher",
    "prune",
    "rank_nodes",
    "resolve_prune_config",
    "select_nodes",
    "weights_fingerprint",
]
