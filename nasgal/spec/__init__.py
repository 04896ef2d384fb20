"""The spec: architectures as typed, validated data. Imports no torch."""

from .base import SpecModel
from .cell import INPUTS, OUTPUT, Cell, Edge
from .darts_text import genotype_from_darts, parse_darts, read_darts_file, to_darts
from .costs import NetworkCost, PositionCost, cost_report, count_macs, count_params, network_cost
from .genotype import Genotype, Provenance
from .graph import canonical_hash, live_nodes, same_graph, to_networkx, topological_order
from .library import library, resolve_spec_path
from .io import KINDS, SpecFile, atomic_write_text, dumps, load, parse_spec, save, spec_hash, validate_spec
from .network import Auxiliary, CifarStem, ImageNetStem, InputSpec, Network, Position, Pruning, Stride2Stem
from .space import SearchSpace
from .ops import DARTS_OPS, KNOWN_OPS, OP_COSTS
from .plan import CellPlan, EdgePlan, NetworkPlan, plan_network
from .stack import default_reductions, stack

__all__ = [name for name in dir() if not name.startswith("_")]
