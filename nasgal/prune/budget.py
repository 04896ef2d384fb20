"""From learned masks to kept nodes: threshold, budget, and the connectivity guard.

Pure Python on the spec (no torch). Nodes are ranked by their final mask value, ties broken
by the mask's running sum over the epochs (a node that died late is stronger than one that
died early), then by position and node id.

- No budget: a node is kept when its mask is above the threshold.
- ``keep_nodes=f``: keep the ``round(f·N)`` strongest nodes (N = live nodes of the teacher),
  counted as *live* nodes of the result; a node whose addition would overshoot the target by
  more than one is skipped, so the count is met exactly where the graph allows and within one
  node otherwise. Masks at zero still rank by their running sum.
- ``keep_params=f``: a ceiling. Nodes are added strongest first, skipping any whose addition
  would take the parameter count above ``f·params(teacher)``: the result fits the budget and
  no further node would.
- Connectivity guard (docs/design.md, "What pruning a node means"): every position keeps at least one live node (a cell with none would
  pass only its preprocessed inputs on, a whole cell lost), which with the dead-signal rules
  also keeps a live path from the stem to the classifier and to the auxiliary head. Where a
  position has none, the fewest, strongest nodes that make it live are revived (earlier
  positions first, since a later one builds on them), and each revival is reported. A budget
  yields to the guard; the result says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

from ..errors import NasgalError
from ..spec.costs import count_params
from ..spec.network import Network
from ..spec.plan import NetworkPlan, plan_network

Node = tuple[int, int]  # (position, node id)


@dataclass
class Selection:
    kept: list[list[int]]  # live nodes per position of the result
    revived: list[dict] = field(default_factory=list)  # {position, node, mask}
    events: list[str] = field(default_factory=list)
    target: float | int | None = None  # node count or parameter ceiling asked for
    budget_met: bool = True


def _with_kept(network: Network, kept: dict[int, set[int]]) -> Network:
    """An unvalidated copy with these kept nodes (for cheap probing)."""
    positions = [
        pos.model_copy(update={"kept": sorted(kept.get(i, set()))}) for i, pos in enumerate(network.positions)
    ]
    return network.model_copy(update={"positions": positions})


def candidates(network: Network) -> list[list[int]]:
    """The teacher's live intermediate nodes per position: what pruning chooses from."""
    return [list(cp.live) for cp in plan_network(network).cells]


class _Probe:
    def __init__(self, network: Network) -> None:
        self.network = network

    def plan(self, kept: dict[int, set[int]]) -> NetworkPlan:
        return plan_network(_with_kept(self.network, kept))

    def live_count(self, kept: dict[int, set[int]]) -> int:
        return sum(len(cp.live) for cp in self.plan(kept).cells)

    def params(self, kept: dict[int, set[int]]) -> int:
        return count_params(_with_kept(self.network, kept))

    def required(self) -> list[int]:
        """Positions that must keep a live node: all of them, earliest first."""
        return list(range(len(self.network.positions)))

    def connected(self, kept: dict[int, set[int]]) -> bool:
        plan = self.plan(kept)
        return all(not plan.cells[p].dead for p in self.required())


def rank_nodes(
    masks: list[dict[int, float]], integral: list[dict[int, float]] | None = None
) -> list[Node]:
    """All (position, node) pairs, strongest first."""
    keyed = []
    for p, m in enumerate(masks):
        for n, v in m.items():
            s = integral[p].get(n, 0.0) if integral is not None else 0.0
            keyed.append((-float(v), -float(s), p, n))
    keyed.sort()
    return [(p, n) for _, _, p, n in keyed]


def _add(kept: dict[int, set[int]], node: Node) -> dict[int, set[int]]:
    out = {p: set(s) for p, s in kept.items()}
    out.setdefault(node[0], set()).add(node[1])
    return out


def _key(kept: dict[int, set[int]]) -> tuple:
    return tuple(sorted((p, n) for p, s in kept.items() for n in s))


def _make_live(
    probe: _Probe, kept: dict[int, set[int]], position: int, masks: list[dict[int, float]], rank: dict[Node, int],
    memo: dict,
) -> dict[int, set[int]] | None:
    """The cheapest extension of ``kept`` (fewest added nodes, then strongest) in which
    ``position`` is live; ``None`` when no extension can make it live."""
    key = (position, _key(kept))
    if key in memo:
        return memo[key]
    plan = probe.plan(kept)
    if not plan.cells[position].dead:
        memo[key] = kept
        return kept
    pool = sorted((n for n in masks[position] if n not in kept.get(position, set())), key=lambda n: rank[(position, n)])

    def within(base: dict[int, set[int]]) -> dict[int, set[int]] | None:
        for size in range(1, len(pool) + 1):
            for combo in combinations(pool, size):  # in rank order: strongest combinations first
                trial = base
                for n in combo:
                    trial = _add(trial, (position, n))
                if not probe.plan(trial).cells[position].dead:
                    return trial
        return None

    best = within(kept)
    if best is None:  # no live input to build on: make an earlier position live first
        options = []
        for q in (position - 1, position - 2):
            if q >= 0 and plan.cells[q].dead:
                base = _make_live(probe, kept, q, masks, rank, memo)
                found = within(base) if base is not None else None
                if found is not None:
                    added = [node for node in _key(found) if node not in set(_key(kept))]
                    options.append((len(added), sum(rank[a] for a in added), found))
        best = min(options, key=lambda o: o[:2])[2] if options else None
    memo[key] = best
    return best


def _connect(
    probe: _Probe, kept: dict[int, set[int]], masks: list[dict[int, float]], rank: dict[Node, int],
) -> dict[int, set[int]]:
    """Make every required position live with the fewest, strongest added nodes."""
    for position in probe.required():
        found = _make_live(probe, kept, position, masks, rank, {})
        if found is None:
            raise NasgalError(
                f"cannot keep position {position} live: no choice of nodes gives it a live input",
                hint="prune with a smaller --lam or a budget (--keep-nodes / --keep-params)",
            )
        kept = found
    return kept


def _fill(probe: _Probe, kept: dict[int, set[int]], ranked: list[Node], fits) -> dict[int, set[int]]:
    """Add nodes strongest first while ``fits(trial)``, counting only additions that make them live."""
    changed = True
    while changed:
        changed = False
        for node in ranked:
            if node[1] in kept.get(node[0], set()):
                continue
            trial = _add(kept, node)
            if probe.live_count(trial) > probe.live_count(kept) and fits(trial):
                kept, changed = trial, True
    return kept


def select_nodes(
    network: Network,
    masks: list[dict[int, float]],
    *,
    threshold: float = 0.0,
    keep_params: float | None = None,
    keep_nodes: float | None = None,
    integral: list[dict[int, float]] | None = None,
) -> Selection:
    """Kept nodes per position from mask values (``masks[p][node]``, teacher-live nodes only)."""
    if len(masks) != len(network.positions):
        raise NasgalError(f"{len(masks)} mask entries for {len(network.positions)} positions")
    probe = _Probe(network)
    ranked = rank_nodes(masks, integral)
    rank = {node: i for i, node in enumerate(ranked)}
    total = len(ranked)
    sel = Selection(kept=[])
    if keep_nodes is None and keep_params is None:
        above = {p: {n for n, v in m.items() if v > threshold} for p, m in enumerate(masks)}
        kept = _connect(probe, above, masks, rank)
        guard = set(_key(kept)) - set(_key(above))
    else:
        # Connect first (the fewest, strongest nodes), then fill to the budget strongest first.
        kept = _connect(probe, {}, masks, rank)
        guard = set(_key(kept))
        if keep_nodes is not None:
            target = max(1, round(keep_nodes * total))
            sel.target = target
            for slack in (0, 1):  # exact where the graph allows; then one over where it forces it
                if probe.live_count(kept) < target:
                    kept = _fill(probe, kept, ranked, lambda t, s=slack: probe.live_count(t) <= target + s)
        else:
            ceiling = keep_params * count_params(network)
            sel.target = ceiling
            kept = _fill(probe, kept, ranked, lambda t: probe.params(t) <= ceiling)
    live = {(p, n) for p, cp in enumerate(probe.plan(kept).cells) for n in cp.live}
    for p, n in sorted(live, key=lambda node: rank[node]):
        v = float(masks[p][n])
        if v > threshold:
            continue
        if (p, n) in guard:  # the guard needed it although its mask says remove
            sel.revived.append({"position": p, "node": n, "mask": v})
            sel.events.append(f"revived node {n} of position {p} (mask {v:.3g}) to keep the network connected")
        else:
            sel.events.append(f"kept node {n} of position {p} (mask {v:.3g}) to meet the budget")
    plan = probe.plan(kept)
    sel.kept = [list(cp.live) for cp in plan.cells]
    if keep_nodes is not None:
        live = sum(len(k) for k in sel.kept)
        sel.budget_met = abs(live - sel.target) <= 1
        if not sel.budget_met:
            sel.events.append(f"keep-nodes target {sel.target} missed: {live} live nodes")
    elif keep_params is not None:
        params = probe.params(kept)
        sel.budget_met = params <= sel.target
        if not sel.budget_met:
            sel.events.append(
                f"keep-params ceiling {sel.target:,.0f} exceeded ({params:,} parameters) to keep the network connected"
            )
    return sel
