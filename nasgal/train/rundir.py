"""Run directories: atomic JSON, checkpoints, per-epoch metrics and environment facts."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import NasgalError
from ..spec.io import _umask, atomic_write_text, save

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ..progress import Reporter


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise NasgalError(f"{path} does not exist") from None
    except json.JSONDecodeError as e:
        raise NasgalError(f"{path} is not valid JSON (line {e.lineno}: {e.msg})") from None


def check_same_run(out: Path, record: dict[str, Any], identity: dict[str, str], what: str = "run") -> None:
    """Refuse to continue ``out`` when it holds another run.

    ``identity`` maps keys of ``record`` that must match exactly to words for the message
    (e.g. ``{"network_hash": "network"}``); ``record["config"]`` must match too, except the
    device and thread count, and the differing settings are named.
    """
    old = read_json(out / "config.json")
    for key, word in identity.items():
        if old.get(key) != record[key]:
            raise NasgalError(
                f"{out} holds a {what} of another {word}",
                hint="use another --out directory, or remove the old one",
            )
    a, b = old.get("config", {}), record["config"]
    differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in ("device", "threads"))
    if differ:
        raise NasgalError(
            f"{out} holds a {what} with other settings "
            f"({', '.join(f'{k}: {a.get(k)!r} -> {b.get(k)!r}' for k in differ)})",
            hint="resume with the same settings, or use another --out directory",
        )


def open_run(
    out: Path,
    spec: BaseModel,
    record: dict[str, Any],
    identity: dict[str, str],
    *,
    what: str = "run",
    outputs: tuple[str, ...] = ("metrics.json",),
    reporter: Reporter | None = None,
) -> bool:
    """Set up the run directory ``out``; return True when it already holds this run, complete.

    An existing run there must be the same run (:func:`check_same_run` with ``identity`` and
    ``what``); it is complete when all ``outputs`` exist, and then nothing is written. Otherwise
    ``out`` is created and ``spec`` (``network.json``) and ``record`` (``config.json``) are
    written atomically.
    """
    if (out / "config.json").exists():
        check_same_run(out, record, identity, what=what)
        if all((out / name).exists() for name in outputs):
            if reporter is not None:
                reporter.message(f"{out} is already complete; nothing to do")
            return True
    out.mkdir(parents=True, exist_ok=True)
    save(spec, out / "network.json")
    write_json(out / "config.json", record)
    return False


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file, then rename: never a half-written checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (tensors and plain containers only)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise NasgalError(f"no checkpoint at {path}") from None
    except Exception as e:  # truncated or foreign files
        raise NasgalError(f"cannot read checkpoint {path}: {e}") from None


def environment(device: torch.device, seed: int) -> dict[str, Any]:
    import pydantic

    from .. import __version__

    env: dict[str, Any] = {
        "nasgal": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pydantic": pydantic.VERSION,
        "platform": platform.platform(),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "seed": seed,
    }
    if device.type == "cuda":
        env["cuda"] = torch.version.cuda
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise NasgalError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NasgalError("device 'cuda' asked for, but torch sees no CUDA device", hint="use --device cpu")
    return dev
