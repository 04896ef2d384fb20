"""From specs to torch modules."""

from .network import AuxiliaryHead, CompiledCell, CompiledNetwork, compile_network, drop_path
from .ops import OP_BUILDERS, FactorizedReduce, ReLUConvBN, build_op, register_op

__all__ = [
    "AuxiliaryHead",
    "CompiledCell",
    "CompiledNetwork",
    "FactorizedReduce",
    "OP_BUILDERS",
    "ReLUConvBN",
    "build_op",
    "compile_network",
    "drop_path",
    "register_op",
]
