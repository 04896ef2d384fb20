"""The DARTS supernet, built from a :class:`~nasgal.search.space.SearchSpace`.

Every edge is a softmax(α)-weighted sum over all candidate ops. The arithmetic is the
reference DARTS supernet's (search-mode ops: non-affine BN everywhere, pools followed by a
non-affine BN, 'none' is zero, so parameter counts match it exactly), but the work is
organised around what the supernet shares:

* A *source batch* is every edge that leaves the same source(s): both cell inputs feed
  every node (one batch), node i feeds nodes i+1.. (one batch each). A 4-node cell runs 4
  batches instead of 14 edges x 8 ops.
* Within a batch, all conv ops read one ReLU of the input. The first depthwise conv of every
  sep/dil op on every edge of the batch is one grouped conv per kernel geometry; all first
  pointwise convs are one grouped 1x1 conv; all their non-affine BNs are one BN (BN is per
  channel, so one BN over concatenated channels is the same as many).
* Pools and the identity skip have no weights: computed once per source, not once per edge.
* The α-weighted sum into the target nodes is a matmul of the (block-sparse) weight matrix
  with the stacked op outputs: one kernel per op group instead of a multiply and an add per
  op and edge.
* 'none' contributes zero, so it is never computed (its α still enters the softmax).

Memory: every non-affine BN keeps its output, not its input, for backward
(:mod:`nasgal.search.bn`): the α-weighted sum keeps those outputs anyway. ``recompute=True``
also drops the depthwise outputs and recomputes them in backward.

The architecture parameters live outside this module (:class:`Architecture`): the module's
``parameters()`` are exactly the weights, so a weight optimizer, its weight decay and its
gradient clipping cannot touch α. ``forward(x, arch)`` takes α explicitly.

PC-DARTS (``partial=K``): each edge's ops see the first C/K channels of its source, the rest
bypass (max-pooled when the edge is strided), the result is channel-shuffled; edges into a
node are weighted by a per-node softmax of β (edge normalisation). Because the shuffle is a
fixed permutation it commutes with the node's sum, so a node is shuffled once.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..compiler.cpu_paths import cpu_paths, memory_format_of
from ..compiler.depthwise import depthwise_conv2d
from ..compiler.network import stem_modules
from ..compiler.ops import build_op, odd_grid
from ..errors import NasgalError
from ..spec.space import SearchSpace
from ..spec.stem import stem_layers
from .bn import KeepOutputBatchNorm2d

Arch = Mapping[str, torch.Tensor]


def _geometry(op: str) -> tuple[str, int, int] | None:
    """('sep'|'dil', kernel, dilation) for depthwise-separable ops, else None."""
    for kind, dil in (("sep_conv_", 1), ("dil_conv_", 2)):
        if op.startswith(kind):
            k = int(op[len(kind):].split("x")[0])
            return kind[:3], k, dil
    return None


def grouped_pointwise(x: torch.Tensor, weight: torch.Tensor, groups: int, stride: int = 1) -> torch.Tensor:
    """A grouped 1x1 conv (``weight`` ``[G*o, i, 1, 1]``) as one batched matmul.

    cuDNN runs many-group 1x1 convs through transposes that cost more than the convs; a matmul
    of ``[G, o, i]`` with the input viewed as ``[B, G, i, H*W]`` needs none. Inputs that are not
    NCHW-contiguous (channels_last) take the conv path.
    """
    if not x.is_contiguous():
        return F.conv2d(x, weight, stride=stride, groups=groups)
    if stride > 1:
        x = x[:, :, ::stride, ::stride].contiguous()  # a 1x1 conv with stride s reads every s-th pixel
    B, _, H, W = x.shape
    w = weight.view(groups, weight.shape[0] // groups, weight.shape[1]).to(x.dtype)  # [G, o, i]
    y = torch.matmul(w, x.view(B, groups, weight.shape[1], H * W))  # [B, G, o, H*W]
    return y.view(B, -1, H, W)


def _bn(c: int) -> nn.BatchNorm2d:
    return KeepOutputBatchNorm2d(c)


class SourceBatch(nn.Module):
    """All candidate ops of all edges from ``n_s`` sources (``c`` channels each) into ``n_t`` nodes.

    ``forward(x, w)``: x ``[B, n_s*c, H, W]`` (the sources side by side), w ``[n_s, n_t, ops]``
    (edge-op weights) -> ``[B, n_t, c, H', W']``, the weighted sum arriving at each target.
    """

    def __init__(self, ops: list[str], c: int, n_s: int, n_t: int, stride: int):
        super().__init__()
        self.ops, self.c, self.n_s, self.n_t, self.stride = list(ops), c, n_s, n_t, stride
        self.recompute = False
        n_e = n_s * n_t
        self.pools: list[tuple[int, str]] = []  # (op column, 'max'|'avg')
        self.skip_col: int | None = None  # identity skip (stride 1)
        self.fr_col: int | None = None  # FactorizedReduce skip (stride 2)
        sep: list[tuple[int, int]] = []  # (op column, kernel)
        dil: list[tuple[int, int]] = []
        self.generic: list[int] = []
        for col, op in enumerate(ops):
            geo = _geometry(op)
            if op == "none":
                continue
            if op in ("max_pool_3x3", "avg_pool_3x3"):
                self.pools.append((col, op[:3]))
            elif op == "skip_connect":
                if stride == 1:
                    self.skip_col = col
                else:
                    self.fr_col = col
            elif geo is not None:
                (sep if geo[0] == "sep" else dil).append((col, geo[1]))
            else:
                self.generic.append(col)
        # Stage 1 of every sep/dil op: sep ops first, then dil ops. Group g has kernel k_g, dilation d_g.
        self.stage1 = [(col, k, 1) for col, k in sep] + [(col, k, 2) for col, k in dil]
        self.n_sep = len(sep)
        g = len(self.stage1)
        # One depthwise conv per stage-1 group, batched over targets: output channels (s, c, t).
        self.dw1 = nn.ModuleList(
            nn.Conv2d(n_s * c, n_s * c * n_t, k, stride, d * (k - 1) // 2, dilation=d, groups=n_s * c, bias=False)
            for _, k, d in self.stage1
        )
        if g:
            # All first pointwise convs: channels (g, s, t, c), one group per (g, s, t).
            self.pw1 = nn.Conv2d(g * n_e * c, g * n_e * c, 1, groups=g * n_e, bias=False)
            self.bn1 = _bn(g * n_e * c)
        # Stage 2 of the sep ops, per kernel size: channels (s, t, c).
        self.dw2 = nn.ModuleList(
            nn.Conv2d(n_e * c, n_e * c, k, 1, k // 2, groups=n_e * c, bias=False) for _, k, _ in self.stage1[: self.n_sep]
        )
        self.pw2 = nn.ModuleList(nn.Conv2d(n_e * c, n_e * c, 1, groups=n_e, bias=False) for _ in range(self.n_sep))
        self.bn2 = nn.ModuleList(_bn(n_e * c) for _ in range(self.n_sep))
        self.pool_bn = nn.ModuleList(_bn(n_s * c) for _ in self.pools)
        if self.fr_col is not None:
            if c % 2:
                raise NasgalError(f"skip_connect with stride 2 needs an even channel count, got {c}")
            self.fr1 = nn.Conv2d(n_s * c, n_e * (c // 2), 1, stride=2, groups=n_s, bias=False)
            self.fr2 = nn.Conv2d(n_s * c, n_e * (c // 2), 1, stride=2, groups=n_s, bias=False)
            self.fr_bn = _bn(n_e * c)
        # Ops without a batched form: one module per edge (s, t), reading source s.
        self.generic_ops = nn.ModuleList(
            nn.ModuleList(build_op(ops[col], c, stride, affine=False) for _ in range(n_e)) for col in self.generic
        )
        # The α-weighted sums, in the order forward() makes them: ("edge", cols) sums op outputs
        # laid out [G, n_s, n_t] per edge; ("source", cols) sums one output per source, shared
        # by all of the source's edges (pools, identity).
        self.mix: list[tuple[str, list[int]]] = [("edge", [col]) for col, _, _ in self.stage1[: self.n_sep]]
        if len(self.stage1) > self.n_sep:
            self.mix.append(("edge", [col for col, _, _ in self.stage1[self.n_sep :]]))
        self.mix += [("source", [col]) for col, _ in self.pools]
        if self.skip_col is not None:
            self.mix.append(("source", [self.skip_col]))
        if self.fr_col is not None:
            self.mix.append(("edge", [self.fr_col]))
        self.mix += [("edge", [col]) for col in self.generic]

    def mix_index(self, rows: list[list[int]], n_ops: int) -> list[torch.Tensor]:
        """Per weighted sum, where its ``[n_t, K]`` weight matrix comes from in a flat α vector
        (α of edge ``e``, op ``o`` at ``e * n_ops + o``; -1: a constant 0). ``rows[s][t]``: the
        α row of edge (s, t). An "edge" sum's matrix is block sparse: target t takes only the
        outputs of its own edges."""
        n_s, n_t = self.n_s, self.n_t
        out = []
        for kind, cols in self.mix:
            if kind == "source":
                out.append(torch.tensor([[rows[s][t] * n_ops + cols[0] for s in range(n_s)] for t in range(n_t)]))
                continue
            m = torch.full((n_t, len(cols), n_s, n_t), -1, dtype=torch.long)
            for g, col in enumerate(cols):
                for s in range(n_s):
                    for t in range(n_t):
                        m[t, g, s, t] = rows[s][t] * n_ops + col
            out.append(m.view(n_t, -1))
        return out

    # The weights enter the two stages as arguments, not as attributes read inside: a recomputation
    # in backward must use the tensors of the forward (torch.func.functional_call swaps them
    # only while the forward runs, e.g. for the second-order virtual step).
    def _stage1(self, r: torch.Tensor, pw1: torch.Tensor, *dw1: torch.Tensor) -> torch.Tensor:
        """Every stage-1 depthwise conv, regrouped per (op, edge), then all first pointwise convs."""
        n_s, n_t, c = self.n_s, self.n_t, self.c
        B, _, H, W = r.shape
        if not cpu_paths(r):  # one conv per geometry with n_t outputs per channel, regrouped after
            d = torch.stack(
                [conv._conv_forward(r, w, None).unflatten(1, (n_s, c, n_t)).transpose(2, 3) for conv, w in zip(self.dw1, dw1)],
                dim=1,
            )
            return grouped_pointwise(d.flatten(1, 4), pw1, self.pw1.groups)  # [B, G*n_e*c, H', W']
        # On the CPU, every source channel once per target, in (s, t, c) order, so that each
        # conv has one output per input channel: oneDNN runs that 2-4x faster forward and
        # backward than the same conv with a channel multiplier (benchmarks/depthwise.py), the
        # copy included. (It keeps n_t times the ReLU's output for backward.)
        rx = r.unflatten(1, (n_s, 1, c)).expand(B, n_s, n_t, c, H, W).reshape(B, n_s * n_t * c, H, W)
        rx = rx.contiguous(memory_format=memory_format_of(r))
        d = []
        for conv, w in zip(self.dw1, dw1):
            w = w.view(n_s, c, n_t, *w.shape[1:]).transpose(1, 2).reshape(w.shape)  # (s, c, t) -> (s, t, c)
            d.append(depthwise_conv2d(rx, w, conv.stride, conv.padding, conv.dilation))  # type: ignore[arg-type]
        return grouped_pointwise(torch.stack(d, dim=1).flatten(1, 2), pw1, self.pw1.groups)  # [B, G*n_e*c, H', W']

    def _stage2(self, r: torch.Tensor, dw2: torch.Tensor, pw2: torch.Tensor, i: int) -> torch.Tensor:
        conv = self.dw2[i]
        y = depthwise_conv2d(r, dw2, conv.stride, conv.padding, conv.dilation)  # type: ignore[arg-type]
        return grouped_pointwise(y, pw2, self.pw2[i].groups)

    def _recomputed(self, fn, *args):
        """``fn(*args)``; with ``recompute`` on, its inner activations (the depthwise outputs) are
        not kept for backward but recomputed there. No BN inside: its running statistics would be
        updated twice."""
        if self.recompute and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False, preserve_rng_state=False)
        return fn(*args)

    @property
    def needs_relu(self) -> bool:
        return bool(self.stage1) or self.fr_col is not None

    def forward(self, x: torch.Tensor, mats: list[torch.Tensor]) -> torch.Tensor:
        """``mats``: the weight matrices of :attr:`mix`, in order (see :meth:`mix_index`)."""
        B, _, H, W = x.shape
        n_s, n_t, c = self.n_s, self.n_t, self.c
        n_e = n_s * n_t
        mats = iter(mats)
        out = None

        def add(y: torch.Tensor) -> None:
            # the next weight matrix [n_t, K] @ y [B, K, ...] -> [B, n_t, c*H'*W']
            nonlocal out
            wt = next(mats).to(y.dtype)
            z = torch.bmm(wt.expand(B, *wt.shape), y.reshape(B, wt.shape[1], -1))
            out = z if out is None else out + z

        r = F.relu(x) if self.needs_relu else None
        if self.stage1:
            # [B, G, n_s, n_t, c, H', W']: every op's depthwise output, regrouped per (op, edge).
            y1 = self.bn1(self._recomputed(self._stage1, r, self.pw1.weight, *(m.weight for m in self.dw1)))  # [B, G*n_e*c, H', W']
            Ho, Wo = y1.shape[-2:]
            y1 = y1.view(B, len(self.stage1), n_e * c, Ho, Wo)
            # One split, not an index per op: its backward is one concatenation, where indexing
            # would write a zero-filled copy of y1's gradient per op and then add them up.
            n_dil = len(self.stage1) - self.n_sep
            parts = torch.split(y1, [1] * self.n_sep + ([n_dil] if n_dil else []), dim=1)
            for i in range(self.n_sep):
                y2 = self._recomputed(self._stage2, F.relu(parts[i].squeeze(1)), self.dw2[i].weight, self.pw2[i].weight, i)
                y2 = self.bn2[i](y2)  # [B, n_e*c, H', W']
                add(y2)
            if n_dil:
                add(parts[-1])
        # torch's CPU pools of stride 1 run faster forward and backward on channels_last (vectorised
        # over channels), the two layout copies included: max 1.7-2.6x, avg 1.1-1.3x; strided, not
        # (benchmarks/pool.py)
        copy = self.stride == 1 and cpu_paths(x) and x.is_contiguous()
        xp = x.contiguous(memory_format=torch.channels_last) if copy and self.pools else x
        for (_, kind), bn in zip(self.pools, self.pool_bn):
            if kind == "max":
                p = F.max_pool2d(xp, 3, self.stride, 1)
            else:
                p = F.avg_pool2d(xp, 3, self.stride, 1, count_include_pad=False)
            p = p.contiguous() if copy else p
            add(bn(p))  # shared by all targets of a source
        if self.skip_col is not None:
            add(x)
        if self.fr_col is not None:
            a = grouped_pointwise(r, self.fr1.weight, n_s, 2).unflatten(1, (n_s, n_t, 1, c // 2))
            # the stride-2 conv of the shifted input reads exactly the odd grid (no full-size shifted copy)
            b = grouped_pointwise(odd_grid(r).contiguous(memory_format=memory_format_of(r)), self.fr2.weight, n_s, 1)
            b = b.unflatten(1, (n_s, n_t, 1, c // 2))
            add(self.fr_bn(torch.cat([a, b], dim=3).flatten(1, 4)))
        if self.generic:
            xs = x.unflatten(1, (n_s, c))
            for mods in self.generic_ops:
                add(torch.stack([mods[s * n_t + t](xs[:, s]) for s in range(n_s) for t in range(n_t)], dim=1))
        if out is None:  # only 'none' ops: zeros at the output resolution
            Ho, Wo = -(-H // self.stride), -(-W // self.stride)
            return x.new_zeros(B, n_t, c, Ho, Wo)
        Ho, Wo = -(-H // self.stride), -(-W // self.stride)
        return out.view(B, n_t, c, Ho, Wo)

    # Weights in the reference layout, for oracles and ports -----------------------
    def edge_op_weights(self, s: int, t: int, col: int) -> list[torch.Tensor]:
        """Views of op ``col``'s weights on edge (s, t), in the order of ``build_op(...).parameters()``."""
        n_s, n_t, c = self.n_s, self.n_t, self.c
        e = s * n_t + t
        for g, (gcol, k, _) in enumerate(self.stage1):
            if gcol != col:
                continue
            dw1 = self.dw1[g].weight.view(n_s, c, n_t, 1, k, k)[s, :, t]
            pw1 = self.pw1.weight.view(len(self.stage1), n_s * n_t, c, c, 1, 1)[g, e]
            if g >= self.n_sep:
                return [dw1, pw1]
            dw2 = self.dw2[g].weight.view(n_s * n_t, c, 1, k, k)[e]
            pw2 = self.pw2[g].weight.view(n_s * n_t, c, c, 1, 1)[e]
            return [dw1, pw1, dw2, pw2]
        if col == self.fr_col:
            h = c // 2
            return [self.fr1.weight.view(n_s, n_t, h, c, 1, 1)[s, t], self.fr2.weight.view(n_s, n_t, h, c, 1, 1)[s, t]]
        if col in self.generic:
            return list(self.generic_ops[self.generic.index(col)][e].parameters())
        return []


class SearchCell(nn.Module):
    """One supernet cell: input preprocessing, then one :class:`SourceBatch` per source group."""

    def __init__(self, space: SearchSpace, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool, partial: int = 1):
        super().__init__()
        n = space.nodes
        self.nodes, self.c, self.reduction, self.reduction_prev, self.partial = n, c, reduction, reduction_prev, partial
        if c % partial:
            raise NasgalError(f"partial channels K={partial} must divide the cell channels ({c})")
        c_op = c // partial
        self.c_op = c_op
        if reduction_prev:  # FactorizedReduce of input k-2, as two half convs (BN shared below)
            if c % 2:
                raise NasgalError(f"a cell after a reduction needs an even channel count, got {c}")
            self.pre0_a = nn.Conv2d(c_pp, c // 2, 1, stride=2, bias=False)
            self.pre0_b = nn.Conv2d(c_pp, c // 2, 1, stride=1, bias=False)  # on odd_grid(input)
        else:
            self.pre0 = nn.Conv2d(c_pp, c, 1, bias=False)
        self.pre1 = nn.Conv2d(c_p, c, 1, bias=False)
        self.pre_bn = _bn(2 * c)  # both inputs' non-affine BNs as one
        stride = 2 if reduction else 1
        self.batches = nn.ModuleList(
            [SourceBatch(space.ops, c_op, 2, n, stride)] + [SourceBatch(space.ops, c_op, 1, n - 1 - i, 1) for i in range(n - 1)]
        )
        self.rows = [[[space.edge_row(s, t) for t in range(n)] for s in range(2)]]  # per batch: [n_s][n_t] α rows
        self.rows += [[[space.edge_row(2 + i, t) for t in range(i + 1, n)]] for i in range(n - 1)]
        # Every weight matrix of every batch (and, with partial channels, every batch's bypass
        # weights), picked in one go from the flat vector [softmax(α)·(β) (E·ops) | β-softmax (E,
        # partial only)] by a constant 0/1 matrix (see Supernet.mixing_weights). A matrix, not an
        # index: its backward is one more matrix product, where an index's backward is a
        # scatter-add (sorted or atomic on a GPU) that a CUDA graph holds less surely.
        e, n_ops = space.num_edges, len(space.ops)
        parts: list[torch.Tensor] = []
        self.mix_sizes: list[int] = []
        self.mix_shapes: list[tuple[int, int]] = []
        for batch, rows in zip(self.batches, self.rows):
            mats = batch.mix_index(rows, n_ops)
            if partial > 1:  # the bypass of batch b: [n_t, n_s], β-softmax of edge (s, t)
                mats.append(torch.tensor([[e * n_ops + rows[s][t] for s in range(batch.n_s)] for t in range(batch.n_t)]))
            self.mix_sizes.append(len(mats))
            self.mix_shapes += [tuple(m.shape) for m in mats]
            parts += [m.flatten() for m in mats]
        index = torch.cat(parts)
        picks = (index >= 0).nonzero().squeeze(1)
        matrix = torch.zeros(len(index), e * n_ops + (e if partial > 1 else 0))
        matrix[picks, index[picks]] = 1.0
        self.register_buffer("mix_matrix", matrix, persistent=False)  # [entries, flat]

    def preprocess(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        """``[B, 2c, H, W]``: the two preprocessed inputs side by side."""
        if self.reduction_prev:
            r0 = F.relu(s0)
            parts = [self.pre0_a(r0), self.pre0_b(odd_grid(r0))]  # = a stride-2 conv of the shifted input
        else:
            parts = [self.pre0(F.relu(s0))]
        return self.pre_bn(torch.cat(parts + [self.pre1(F.relu(s1))], dim=1))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, mixing: torch.Tensor) -> torch.Tensor:
        """``mixing``: the flat vector picked by :attr:`mix_matrix` (Supernet.mixing_weights)."""
        x = self.preprocess(s0, s1)
        c, k, c_op = self.c, self.partial, self.c_op
        flat = torch.split(mixing, [a * b for a, b in self.mix_shapes])
        mats = [m.view(shape) for m, shape in zip(flat, self.mix_shapes)]
        acc: list[torch.Tensor | None] = [None] * self.nodes
        nodes: list[torch.Tensor] = []
        src = x
        start = 0
        for batch, n_mats in zip(self.batches, self.mix_sizes):
            w = mats[start : start + n_mats]
            start += n_mats
            B, _, H, W = src.shape
            if k > 1:
                x_op, bypass = torch.split(src.unflatten(1, (batch.n_s, c)), [c_op, c - c_op], dim=2)
                x_op = x_op.flatten(1, 2)  # bypass: [B, n_s, c - c_op, H, W]
                if batch.stride == 2:
                    bypass = F.max_pool2d(bypass.flatten(1, 2), 2, 2, ceil_mode=True).unflatten(1, (batch.n_s, c - c_op))
                mixed = batch(x_op, w[:-1])  # [B, n_t, c_op, H', W']
                Ho, Wo = mixed.shape[-2:]
                en_t = w[-1].to(bypass.dtype)  # [n_t, n_s]
                by = torch.bmm(en_t.expand(B, *en_t.shape), bypass.reshape(B, batch.n_s, -1))
                by = by.view(B, batch.n_t, c - c_op, Ho, Wo)
                contrib = torch.cat([mixed, by], dim=2)
            else:
                contrib = batch(src, w)  # [B, n_t, c, H', W']
            first = self.nodes - batch.n_t
            for t, part in enumerate(contrib.unbind(1)):  # unbind: one gradient write, not one per target
                a = acc[first + t]
                acc[first + t] = part if a is None else a + part
            node = acc[first]
            if k > 1:  # channel shuffle of PC-DARTS, once per node
                node = node.unflatten(1, (k, c // k)).transpose(1, 2).flatten(1, 2)
            nodes.append(node)
            src = node
        return torch.cat(nodes, dim=1)


class Supernet(nn.Module):
    """The DARTS supernet of ``space`` for ``in_channels``-channel images and ``classes`` classes.

    ``forward(x, arch)``: x ``[B, in_channels, H, W]``, arch a mapping with ``normal`` and
    ``reduce`` (α, ``[edges, ops]``; and ``beta_normal``/``beta_reduce`` with partial
    channels) -> logits ``[B, classes]``.
    """

    def __init__(self, space: SearchSpace, in_channels: int, classes: int, partial: int = 1, recompute: bool = False):
        super().__init__()
        self.space, self.partial = space, partial
        c = space.channels
        cs = space.stem_multiplier * c
        self.stem = stem_modules(stem_layers(space.stem, in_channels, c, space.stem_multiplier).first)
        reductions = set(space.reduction_positions())
        c_pp, c_p, c_cur = cs, cs, c
        reduction_prev = False
        self.cells = nn.ModuleList()
        for i in range(space.cells):
            reduction = i in reductions
            if reduction:
                c_cur *= 2
            self.cells.append(SearchCell(space, c_pp, c_p, c_cur, reduction, reduction_prev, partial))
            reduction_prev = reduction
            c_pp, c_p = c_p, space.nodes * c_cur
        self.classifier = nn.Linear(c_p, classes)
        # Cells of one type share α and the same mixing layout: their weights are picked once per type.
        self._first_of_type: dict[str, int] = {}
        for i, cell in enumerate(self.cells):
            key = "reduce" if cell.reduction else "normal"
            first = self._first_of_type.setdefault(key, i)
            assert torch.equal(cell.mix_matrix, self.cells[first].mix_matrix), "cells of one type mix alike"
        self.set_recompute(recompute)
        self.count_bns()

    def count_bns(self) -> None:
        """Let the search BNs' batch counters advance together, one kernel per forward, not one
        each (called again after the BNs were replaced, e.g. by batch norms over all processes)."""
        self._counted_bns = [m for m in self.modules() if isinstance(m, KeepOutputBatchNorm2d)]
        for m in self._counted_bns:
            m.counted_outside = True

    def set_recompute(self, on: bool) -> None:
        """Recompute the depthwise convs' outputs in backward instead of keeping them: the
        weight step saves about 40% less (C=16, 8 cells: 4.4 -> 2.7 GiB at batch 64) for
        one more forward of the depthwise and pointwise convs. Results are unchanged."""
        for m in self.modules():
            if isinstance(m, SourceBatch):
                m.recompute = on

    def edge_normalisation(self, beta: torch.Tensor) -> torch.Tensor:
        """Per node, a softmax of β over the node's incoming edges -> ``[edges]``."""
        return torch.cat([torch.softmax(beta[rows.start : rows.stop], dim=0) for rows in self.space.node_rows()])

    def mixing_weights(self, alpha: torch.Tensor, beta: torch.Tensor | None, cell: SearchCell) -> torch.Tensor:
        """Every weight matrix that ``cell`` (and every cell of its type) mixes with, as one
        flat vector: softmax(α) (times the edge normalisation of β with partial channels)
        picked by the cell's :attr:`SearchCell.mix_matrix`. One matrix-vector product per
        cell type and forward, instead of a few small kernels per weighted sum."""
        w = torch.softmax(alpha, dim=-1)
        flat = w.flatten()
        if self.partial > 1:
            en = self.edge_normalisation(beta)
            flat = torch.cat([(w * en[:, None]).flatten(), en])
        device = flat.device.type
        with torch.autocast(device, enabled=False):  # α's gradient sums in full precision
            mixing = torch.mv(cell.mix_matrix.to(flat.dtype), flat)
        if torch.is_autocast_enabled(device):  # cast once, not at every matmul
            mixing = mixing.to(torch.get_autocast_dtype(device))
        return mixing

    def forward(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        counters = [m.num_batches_tracked for m in self._counted_bns if m.counted_by_owner]
        if counters:
            torch._foreach_add_(counters, 1)
        mixing = {}
        for key, cell in self._first_of_type.items():
            mixing[key] = self.mixing_weights(arch[key], arch.get(f"beta_{key}"), self.cells[cell])
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, mixing["reduce" if cell.reduction else "normal"])
        return self.classifier(s1.mean(dim=(2, 3)))

    def num_weights(self) -> int:
        return sum(p.numel() for p in self.parameters())


class Architecture(nn.Module):
    """α (and PC-DARTS β) of both cell types, shared by all cells of a type.

    A separate module so that the weight optimizer never sees it. ``alpha_*``: ``[edges, ops]``
    initialised to 1e-3·N(0, 1); ``beta_*``: ``[edges]`` (partial channels only).
    """

    def __init__(self, space: SearchSpace, partial: int = 1, generator: torch.Generator | None = None):
        super().__init__()
        e, o = space.num_edges, len(space.ops)
        self.alpha_normal = nn.Parameter(1e-3 * torch.randn(e, o, generator=generator))
        self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(e, o, generator=generator))
        self.partial = partial
        if partial > 1:
            self.beta_normal = nn.Parameter(1e-3 * torch.randn(e, generator=generator))
            self.beta_reduce = nn.Parameter(1e-3 * torch.randn(e, generator=generator))

    def as_dict(self, detach: bool = False) -> dict[str, torch.Tensor]:
        d = {"normal": self.alpha_normal, "reduce": self.alpha_reduce}
        if self.partial > 1:
            d["beta_normal"] = self.beta_normal
            d["beta_reduce"] = self.beta_reduce
        return {k: v.detach() for k, v in d.items()} if detach else d
