"""Fuzz the spec commands with mutated spec files: no traceback, no hang, no accepted-invalid.

Seeds are the shipped genotypes (``genotypes/*.json``), the search space (``spaces/*.json``)
and small networks stacked from the genotypes (one per stem kind). Each case mutates a seed
(fields deleted, duplicated or retyped, NaN and huge numbers, negative channels, cycles,
self-loops, dangling edges, duplicate nodes, odd unicode, deep nesting, very large files),
writes it to a file and runs it in-process through the CLI's ``main([...])``:

- ``validate FILE``
- ``compile FILE --json`` (a genotype is stacked small: 3 cells, C=4, 8 px)
- ``render FILE --format dot``
- ``diff SEED FILE``

and classifies the case:

- ``ok``: every command exited 0 (``diff`` 0 or 1);
- ``clean``: ``validate`` refused the file with exit 1 or 2 and an ``Error:`` line, and so did
  the other commands;
- ``traceback``: some command let an unexpected exception through (or printed one);
- ``hang``: some command took longer than ``--timeout`` seconds;
- ``accepted-invalid``: ``validate`` accepted the file and another command then failed.

Every case that is not ``ok`` or ``clean`` is written to ``--failures`` with what happened.

    .venv/bin/python benchmarks/fuzz_specs.py --cases 10000 --seed 0
    .venv/bin/python benchmarks/fuzz_specs.py --minutes 30 --failures fuzz-failures/

Exits 1 when any case failed.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import math
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nasgal.cli.main import main as cli_main  # noqa: E402
from nasgal.spec import Genotype, load, stack  # noqa: E402
from nasgal.spec.io import dumps  # noqa: E402
from nasgal.spec.limits import MAX_FILE_BYTES  # noqa: E402

OUTCOMES = ("ok", "clean", "traceback", "hang", "accepted-invalid")
FAILURES = ("traceback", "hang", "accepted-invalid")


class CaseTimeout(BaseException):
    """Raised by the alarm in a command that ran past the per-case timeout (a BaseException, so
    the CLI's error boundary does not turn it into an error message)."""


def _alarm(signum, frame):  # pragma: no cover - signal handler
    raise CaseTimeout()


# Seeds ---------------------------------------------------------------------------------
def seeds() -> dict[str, Any]:
    """Decoded JSON of every seed, by a short name."""
    out: dict[str, Any] = {}
    for p in sorted((ROOT / "genotypes").glob("*.json")) + sorted((ROOT / "spaces").glob("*.json")):
        out[p.stem] = json.loads(p.read_text())
    for i, (name, stem) in enumerate([("darts_v2", "cifar"), ("pc_darts_cifar", "stride2"), ("nasnet_a", "imagenet")]):
        g = load(ROOT / "genotypes" / f"{name}.json", Genotype)
        net = stack(g, cells=4, channels=4, classes=3, in_channels=1, input_size=12, stem=stem,
                    auxiliary=2 if i == 0 else False)
        out[f"net_{stem}"] = json.loads(dumps(net))
    return out


# Mutations -----------------------------------------------------------------------------
ODD_STRINGS = ["", " ", "\ud800", "\udfff", "a\x00b", "\u202e", "normal\u0301", "🙂", "c_{k-2}", "c_{k-1}",
               "none", "x" * 300, "NaN", "1e999", "$ref", "{}", "normal", "reduction"]
ODD_NUMBERS = [0, -1, -4, 1, 2, 3, 5, 7, 2**31, 2**63, 10**30, 10**400 if False else 10**40, -(2**63), 0.5, 1e308,
               float("nan"), float("inf"), float("-inf"), 3.0, True, False]


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys and indices) into ``data``."""
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, prefix + (i,))
    return out


def _get(data: Any, path: tuple) -> Any:
    for k in path:
        data = data[k]
    return data


def _set(data: Any, path: tuple, value: Any) -> None:
    _get(data, path[:-1])[path[-1]] = value


def _random_value(rng: random.Random) -> Any:
    kind = rng.randrange(6)
    if kind == 0:
        return rng.choice(ODD_NUMBERS)
    if kind == 1:
        return rng.choice(ODD_STRINGS)
    if kind == 2:
        return None
    if kind == 3:
        return [rng.choice(ODD_NUMBERS) for _ in range(rng.randrange(4))]
    if kind == 4:
        return {rng.choice(ODD_STRINGS): rng.choice(ODD_NUMBERS)}
    return rng.randrange(-3, 40)


def m_delete(data: Any, rng: random.Random) -> None:
    path = rng.choice([p for p in _paths(data) if p])
    parent = _get(data, path[:-1])
    del parent[path[-1]]


def m_retype(data: Any, rng: random.Random) -> None:
    path = rng.choice([p for p in _paths(data) if p])
    _set(data, path, _random_value(rng))


def m_duplicate(data: Any, rng: random.Random) -> None:
    lists = [p for p in _paths(data) if isinstance(_get(data, p), list) and _get(data, p)]
    if lists:
        lst = _get(data, rng.choice(lists))
        lst.insert(rng.randrange(len(lst) + 1), copy.deepcopy(rng.choice(lst)))
    else:
        m_retype(data, rng)


def m_number(data: Any, rng: random.Random) -> None:
    nums = [p for p in _paths(data) if p and isinstance(_get(data, p), (int, float)) and not isinstance(_get(data, p), bool)]
    if nums:
        _set(data, rng.choice(nums), rng.choice(ODD_NUMBERS + [rng.randrange(-5, 70000)]))
    else:
        m_retype(data, rng)


def m_string(data: Any, rng: random.Random) -> None:
    strs = [p for p in _paths(data) if p and isinstance(_get(data, p), str)]
    if strs:
        _set(data, rng.choice(strs), rng.choice(ODD_STRINGS))
    else:
        m_retype(data, rng)


def m_key(data: Any, rng: random.Random) -> None:
    """Rename or add a dict key (odd unicode, unknown fields)."""
    dicts = [p for p in _paths(data) if isinstance(_get(data, p), dict)]
    d = _get(data, rng.choice(dicts))
    if d and rng.random() < 0.5:
        k = rng.choice(list(d))
        d[rng.choice(ODD_STRINGS)] = d.pop(k)
    else:
        d[rng.choice(ODD_STRINGS)] = _random_value(rng)


def _cells(data: Any) -> list[dict]:
    cells = data.get("cells") if isinstance(data, dict) else None
    return [c for c in cells.values() if isinstance(c, dict)] if isinstance(cells, dict) else []


def m_graph(data: Any, rng: random.Random) -> None:
    """A structural edit of a cell: cycle, self-loop, dangling edge, duplicate node, concat."""
    cells = _cells(data)
    if not cells:
        return m_number(data, rng)
    c = rng.choice(cells)
    nodes, edges, concat = c.get("nodes", []), c.get("edges", []), c.get("concat", [])
    op = rng.choice(["sep_conv_3x3", "skip_connect", "none", "max_pool_3x3", "conv_7x1_1x7", "bogus"])
    kind = rng.randrange(8)
    if kind == 0 and len(nodes) >= 2:  # cycle
        edges.append({"src": nodes[-1], "dst": nodes[0], "op": op})
    elif kind == 1 and nodes:  # self-loop
        n = rng.choice(nodes)
        edges.append({"src": n, "dst": n, "op": op})
    elif kind == 2:  # dangling edge
        edges.append({"src": rng.choice([99, -1, "c_{k-3}", "in"]), "dst": rng.choice(nodes + [77]), "op": op})
    elif kind == 3 and nodes:  # duplicate node
        nodes.append(rng.choice(nodes))
    elif kind == 4:  # concat edits
        concat.append(rng.choice(nodes + [55, -2]))
    elif kind == 5 and edges:  # drop an edge (may leave a node unfed)
        edges.pop(rng.randrange(len(edges)))
    elif kind == 6:  # renumber one node everywhere
        if nodes:
            old, new = rng.choice(nodes), rng.randrange(-2, 1000)
            c["nodes"] = [new if n == old else n for n in nodes]
            for e in edges:
                if isinstance(e, dict):
                    e["src"] = new if e.get("src") == old else e.get("src")
                    e["dst"] = new if e.get("dst") == old else e.get("dst")
            c["concat"] = [new if n == old else n for n in concat]
    else:  # many nodes
        base = max([n for n in nodes if isinstance(n, int)] + [0]) + 1
        k = rng.choice([50, 300, 5000])
        for j in range(base, base + k):
            nodes.append(j)
            edges.append({"src": rng.choice(["c_{k-2}", "c_{k-1}", j - 1]), "dst": j, "op": op})
        concat.append(base + k - 1)


def m_network(data: Any, rng: random.Random) -> None:
    """Edits of network fields: stem, channels, sizes, positions, masks, auxiliary."""
    if not isinstance(data, dict) or data.get("kind") != "network":
        return m_graph(data, rng)
    kind = rng.randrange(9)
    if kind == 0:
        data["stem"] = {"kind": rng.choice(["cifar", "stride2", "imagenet", "other"])}
        if rng.random() < 0.5:
            data["stem"]["multiplier"] = rng.choice([1, 2, 3, 0, 10**6])
    elif kind == 1:
        data["channels"] = rng.choice([1, 2, 3, 5, 7, 9, 4096, 10**5, 10**9])
    elif kind == 2:
        s = rng.choice([1, 2, 3, 7, 33, 4096, 10**6, 10**12])
        data["input"] = {"channels": rng.choice([1, 3, 0, 10**6]), "size": [s, rng.choice([s, 1, 5])]}
    elif kind == 3:
        pos = data.get("positions", [])
        if pos:
            pos.extend(copy.deepcopy(pos) * rng.choice([1, 10, 300]))
    elif kind == 4:
        for p in data.get("positions", []):
            if isinstance(p, dict):
                p["reduction"] = rng.random() < 0.5
    elif kind == 5:
        for p in data.get("positions", []):
            if isinstance(p, dict) and rng.random() < 0.5:
                cell = data.get("cells", {}).get(p.get("cell"), {})
                nodes = cell.get("nodes", []) if isinstance(cell, dict) else []
                p["kept"] = [n for n in nodes if rng.random() < 0.5]
                if rng.random() < 0.3:
                    p["mask"] = {str(n): rng.choice([0.0, 0.5, -1.0, float("nan")]) for n in nodes}
    elif kind == 6:
        data["auxiliary"] = {"position": rng.randrange(-2, 8), "weight": rng.choice([0.4, -1, float("nan")])}
    elif kind == 7:
        data["classes"] = rng.choice([1, 0, -3, 10**7, 10**12])
    else:
        data["drop_path"] = rng.choice([0.0, 0.99, 1.0, float("nan"), -0.1])


def m_space(data: Any, rng: random.Random) -> None:
    if not isinstance(data, dict) or data.get("kind") != "search_space":
        return m_network(data, rng)
    field = rng.choice(["nodes", "cells", "channels", "stem_multiplier", "edges_per_node", "reductions", "ops"])
    if field == "reductions":
        data[field] = [rng.randrange(-2, 12) for _ in range(rng.randrange(4))]
    elif field == "ops":
        data[field] = rng.sample(["none", "skip_connect", "sep_conv_3x3", "max_pool_3x3", "x", "none"], rng.randrange(4))
    else:
        data[field] = rng.choice([1, 2, 3, 10**4, 10**9, 10**18, 0])


MUTATORS: list[Callable[[Any, random.Random], None]] = [
    m_delete, m_retype, m_duplicate, m_number, m_string, m_key, m_graph, m_graph, m_network, m_network, m_space,
]


def _encode(data: Any) -> str:
    return json.dumps(data, ensure_ascii=bool(random.getrandbits(1)), allow_nan=True)


def make_case(seed_data: Any, rng: random.Random) -> tuple[str, bytes]:
    """(description, file bytes) of one mutated case."""
    data = copy.deepcopy(seed_data)
    r = rng.random()
    if r < 0.03:  # deep nesting
        depth = rng.choice([100, 1000, 100_000])
        text = json.dumps(data)
        text = text[:-1] + ', "provenance": ' + "[" * depth + "]" * depth + "}"
        return f"deep nesting {depth}", text.encode()
    if r < 0.05:  # a file larger than the limit
        return "large file", (json.dumps(data)[:-1] + ', "name": "' + "x" * (MAX_FILE_BYTES + 10) + '"}').encode()
    if r < 0.07:  # not JSON / not UTF-8 / huge integer
        return "raw", rng.choice([b"\xff\xfe{", b"{", b"[]", b"null", b"1" * 5000, b'{"kind": 1' + b"0" * 5000 + b"}",
                                  b'{"kind": "genotype", "name": "\\ud800", "cells": {}}', b"NaN"])
    steps = rng.randrange(1, 4)
    names = []
    for _ in range(steps):
        mut = rng.choice(MUTATORS)
        names.append(mut.__name__)
        try:
            mut(data, rng)
        except (IndexError, KeyError, TypeError, ValueError, AttributeError):
            pass  # the mutation did not apply to this shape of data
    return " ".join(names), _encode(data).encode("utf-8", "surrogatepass")


# Running -------------------------------------------------------------------------------
def run_cli(argv: list[str], timeout: float) -> tuple[int | str, str, float]:
    """(exit code or 'traceback'/'hang', stderr text, seconds) of one in-process command."""
    out, err = io.StringIO(), io.StringIO()
    t0 = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc: int | str = cli_main(argv)
    except CaseTimeout:
        rc = "hang"
    except BaseException as exc:  # noqa: BLE001 - that is what we are looking for
        rc = "traceback"
        err.write(f"\n{type(exc).__name__}: {exc}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    dt = time.monotonic() - t0
    text = err.getvalue()
    if rc != "hang" and dt > timeout:
        rc = "hang"
    if isinstance(rc, int) and ("Traceback" in text or "Error: unexpected" in text):
        rc = "traceback"
    return rc, text, dt


def _stack_args(blob: bytes) -> tuple[list[str], bool]:
    """Small stacking options for a genotype file, with reductions that fit the cells it has, and
    whether it has a cell to stack at all (a genotype may name its cells freely; stacking uses
    'normal' and 'reduction')."""
    small = ["--cells", "3", "--channels", "4", "--input-size", "8"]
    try:
        cells = json.loads(blob).get("cells")
        names = set(cells) if isinstance(cells, dict) else set()
    except (ValueError, AttributeError, RecursionError):
        names = set()
    if {"normal", "reduction"} <= names:
        return small, True
    if "normal" in names:
        return small + ["--reductions", "none"], True
    if "reduction" in names:
        return small + ["--reductions", "0,1,2"], True
    return small, False


def classify(path: str, seed_path: str, blob: bytes, timeout: float) -> tuple[str, dict[str, Any]]:
    kind = None
    with contextlib.suppress(ValueError, AttributeError, RecursionError):
        kind = json.loads(blob).get("kind")
    small, stackable = _stack_args(blob) if kind == "genotype" else ([], True)
    commands = {
        "validate": ["validate", path],
        "compile": ["compile", path, "--json", *small],
        "render": ["render", path, "--format", "dot"],
        "diff": ["diff", seed_path, path],
    }
    results = {name: run_cli(argv, timeout) for name, argv in commands.items()}
    codes = {name: r[0] for name, r in results.items()}
    detail = {name: {"rc": r[0], "stderr": r[1][-2000:], "seconds": round(r[2], 3)} for name, r in results.items()}
    if any(c == "hang" for c in codes.values()):
        return "hang", detail
    if any(c == "traceback" for c in codes.values()):
        return "traceback", detail
    if codes["validate"] == 0:
        ok = all(c == 0 for n, c in codes.items() if n != "diff") and codes["diff"] in (0, 1)
        if not stackable:  # compile must refuse it, naming the missing cells
            ok = codes["compile"] == 1 and "has no cell named" in results["compile"][1] and codes["render"] == 0
        if kind == "search_space":  # compile, render and diff refuse a search space by design, cleanly
            refused = {"compile": 1, "render": 1, "diff": 2}
            ok = all(codes[n] == rc and "Error: " in results[n][1] for n, rc in refused.items())
        return ("ok" if ok else "accepted-invalid"), detail
    clean = all(c in (1, 2) and "Error: " in results[n][1] for n, c in codes.items())
    return ("clean" if clean else "traceback"), detail


def _build_cli_once() -> None:
    """Build the click command of the CLI once instead of on every ``main([...])`` call (typer
    rebuilds it from the annotations each time, which would dominate a fuzz run)."""
    import functools

    import typer.main

    typer.main.get_command = functools.lru_cache(maxsize=None)(typer.main.get_command)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=1000, help="number of cases (default 1000)")
    ap.add_argument("--minutes", type=float, default=None, help="stop after this many minutes")
    ap.add_argument("--seed", type=int, default=0, help="random seed")
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds a command may take (default 5)")
    ap.add_argument("--failures", type=Path, default=Path("fuzz-failures"), help="folder for failing inputs")
    ap.add_argument("--offset", type=int, default=0, help="number of the first case (to split a run)")
    args = ap.parse_args(argv)

    signal.signal(signal.SIGALRM, _alarm)
    _build_cli_once()
    import nasgal.compiler  # noqa: F401 - import torch before the clock runs
    import logging

    logging.disable(logging.CRITICAL)
    rng_master = random.Random(args.seed)
    seed_data = seeds()
    counts = dict.fromkeys(OUTCOMES, 0)
    t_end = time.monotonic() + 60 * args.minutes if args.minutes else math.inf
    with tempfile.TemporaryDirectory(prefix="nasgal-fuzz-") as tmp:
        seed_files = {}
        for name, data in seed_data.items():
            seed_files[name] = Path(tmp) / f"seed-{name}.json"
            seed_files[name].write_text(json.dumps(data))
        n = 0
        t0 = time.monotonic()
        for i in range(args.offset + args.cases):
            if time.monotonic() > t_end:
                break
            rng = random.Random(rng_master.getrandbits(64))
            name = rng.choice(sorted(seed_data))
            what, blob = make_case(seed_data[name], rng)
            if i < args.offset:
                continue
            case = Path(tmp) / f"case-{i}.json"
            case.write_bytes(blob)
            outcome, detail = classify(str(case), str(seed_files[name]), blob, args.timeout)
            counts[outcome] += 1
            n += 1
            if outcome in FAILURES:
                args.failures.mkdir(parents=True, exist_ok=True)
                stem = f"case-{i}-{outcome}"
                (args.failures / f"{stem}.json").write_bytes(blob)
                (args.failures / f"{stem}.txt").write_text(
                    json.dumps({"seed": name, "mutation": what, "outcome": outcome, "commands": detail}, indent=2,
                               ensure_ascii=True))
            case.unlink()
            if n % 500 == 0:
                print(f"{n} cases, {time.monotonic() - t0:.0f} s: {counts}", file=sys.stderr, flush=True)
    print(json.dumps({"cases": n, **counts, "seconds": round(time.monotonic() - t0, 1)}))
    return 1 if any(counts[o] for o in FAILURES) else 0


if __name__ == "__main__":
    sys.exit(main())
