"""Inference copies of compiled networks: every BatchNorm that follows a convolution folded into it.

In eval mode a BatchNorm is a fixed per-channel scale and shift, so ``conv → BN`` equals one
convolution with scaled weights and a bias, one pass over the feature map fewer. Most of a
DARTS cell's ops end in ``conv → BN`` (ReLUConvBN, both halves of a separable conv, dilated
convs, the stem), so evaluation and inference run a good deal less memory traffic. The fold
is torch's own (``torch.nn.utils.fusion.fuse_conv_bn_eval``); the results equal the unfolded
network's up to float rounding (a few units in the last place of the logits).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _shared_plain_attributes(model: nn.Module) -> dict[int, object]:
    """A deepcopy memo under which the copy shares what is not a tensor or a module (a
    compiled network's spec and plan, its wiring lists): read-only here, and copying the spec
    (a tree of pydantic models) would cost more than the whole fold."""
    memo: dict[int, object] = {}
    for module in model.modules():
        for name, value in vars(module).items():
            if isinstance(value, (dict, torch.Tensor, nn.Module)):  # submodules, weights, hooks: copied
                continue
            memo[id(value)] = value
    return memo


def folded_for_inference(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode in which each batch norm that directly follows a
    ``Conv2d`` inside an ``nn.Sequential`` is folded into that conv (and replaced by an
    identity). ``model`` itself is not changed; the copy shares no tensors with it.
    FactorizedReduce's BN (after a concat of two convs) is left as it is."""
    folded = copy.deepcopy(model, _shared_plain_attributes(model)).eval()
    for seq in [m for m in folded.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for first, second in zip(names, names[1:]):
            conv, bn = seq._modules[first], seq._modules[second]
            if (isinstance(conv, nn.Conv2d) and isinstance(bn, _BatchNorm) and bn.track_running_stats
                    and bn.running_mean is not None):
                seq._modules[first] = fuse_conv_bn_eval(conv, bn)
                seq._modules[second] = nn.Identity()
    return folded
