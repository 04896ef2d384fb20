"""Run directories: their file names, atomic JSON, checkpoints, per-epoch metrics, environment
facts, and the lock that keeps a second process from writing into a run that one is already writing.

A run's identity (``config.json``: dataset, network hash, settings) is also stored inside each
checkpoint, so a resume compares against the checkpoint itself even when ``config.json`` was
deleted or replaced.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import NasgalError
from ..spec.io import atomic_write_text, current_umask, save

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from pydantic import BaseModel



#: The lock file of a run directory (holds the writer's process id).
LOCK = ".lock"

# The files of a run directory (defined in nasgal.runfiles, which views below the engine read too).
from ..runfiles import (  # noqa: E402
    CHECKPOINT,
    CONFIG,
    NETWORK,
    RESULTS,
)


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None``: JSON has no NaN or infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(_finite(data), indent=2, sort_keys=False, allow_nan=False) + "\n")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(_finite(r), allow_nan=False) + "\n" for r in rows))


def read_json(path: Path, hint: str | None = None) -> Any:
    """Decode a JSON file of a run directory; any problem is a :class:`NasgalError` naming the file."""
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise NasgalError(f"{path} does not exist", hint=hint) from None
    except UnicodeDecodeError as e:
        raise NasgalError(f"{path} is not UTF-8 text (byte {e.start})", hint=hint) from None
    except json.JSONDecodeError as e:
        raise NasgalError(f"{path} is not valid JSON (line {e.lineno}: {e.msg})", hint=hint) from None
    except (OSError, RecursionError, ValueError) as e:
        raise NasgalError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}", hint=hint) from None


def read_json_object(path: Path, hint: str | None = None) -> dict[str, Any]:
    """:func:`read_json` of a file that must hold a JSON object."""
    data = read_json(path, hint=hint)
    if not isinstance(data, dict):
        raise NasgalError(f"{path} holds a JSON {type(data).__name__}, not an object", hint=hint)
    return data


def compare_records(old: dict[str, Any], record: dict[str, Any], identity: dict[str, str], where: str,
                    what: str = "run", hint: str | None = None, ignore: frozenset[str] = frozenset()) -> None:
    """Refuse to continue when ``old`` (a stored run record) is not the run ``record`` describes.

    ``identity`` maps keys of ``record`` that must match exactly to words for the message (e.g.
    ``{"network_hash": "network"}``); ``record["config"]`` must match too, except the settings in
    ``ignore`` (those that do not decide results, such as the device), and the differing settings are named.
    """
    for key, word in identity.items():
        if old.get(key) != record[key]:
            raise NasgalError(
                f"{where} holds a {what} of another {word}",
                hint=hint or "use another --out directory, or remove the old one",
            )
    a, b = old.get("config", {}), record["config"]
    if not isinstance(a, dict):
        raise NasgalError(f"{where}: its 'config' is a {type(a).__name__}, not an object",
                          hint=hint or "use another --out directory, or remove the old one")
    b = json.loads(json.dumps(b))  # compare as stored: tuples become lists
    differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in ignore)
    if differ:
        raise NasgalError(
            f"{where} holds a {what} with other settings "
            f"({', '.join(f'{k}: {a.get(k)!r} -> {b.get(k)!r}' for k in differ)})",
            hint=hint or "resume with the same settings, or use another --out directory",
        )


def check_same_run(out: Path, record: dict[str, Any], identity: dict[str, str], what: str = "run",
                   ignore: frozenset[str] = frozenset()) -> None:
    """Refuse to continue ``out`` when its ``config.json`` describes another run (:func:`compare_records`)."""
    old = read_json_object(out / CONFIG, hint=f"remove {out} (or the file) to start over, or use --restart")
    compare_records(old, record, identity, str(out), what, ignore=ignore)


def check_out_dir(out: Path) -> None:
    """``out`` must be a directory or not exist yet."""
    if out.exists() and not out.is_dir():
        raise NasgalError(f"{out} is a file; a run needs a directory there", hint="give --out a directory path")


def clean_temporaries(out: Path) -> list[Path]:
    """Remove the temporary files (``.NAME.*.tmp``) that a killed process left in ``out`` and in
    its subfolders that are not run directories of their own; return what was removed."""
    removed: list[Path] = []
    folders = [out] + [d for d in out.iterdir() if d.is_dir() and not (d / LOCK).exists()] if out.is_dir() else []
    for folder in folders:
        for tmp in folder.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


@contextlib.contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold ``out`` for this process: a second process that asks for it gets a clear error.

    The lock is ``fcntl.flock`` on ``out/.lock``, which the kernel releases when the process
    ends in any way (a kill included), so a stale lock file never blocks a resume. Holding the
    lock, leftover temporary files of a killed writer are removed. Where ``fcntl`` does not
    exist (Windows) no lock is taken.
    """
    check_out_dir(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NasgalError(f"cannot create run directory {out}: {e.strerror}") from None
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    try:
        fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o666 & ~current_umask())
    except OSError as e:
        raise NasgalError(f"cannot write in run directory {out}: {e.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
            raise NasgalError(
                f"{out} is in use: another nasgal process (pid {holder}) is writing to it",
                hint="wait for it to finish, or give this run another --out directory",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        clean_temporaries(out)
        yield
    finally:
        os.close(fd)  # releases the lock


def open_run(
    out: Path,
    record: dict[str, Any],
    identity: dict[str, str],
    *,
    what: str = "run",
    outputs: tuple[str, ...] = (RESULTS,),
    ignore: frozenset[str] = frozenset(),
) -> bool:
    """Check the run directory ``out`` (held with :func:`run_lock`); return True when it already
    holds this run, complete.

    An existing run there must be the same run (:func:`check_same_run` with ``identity`` and
    ``what``); it is complete when all ``outputs`` exist. Nothing is written: a run that fails
    before it starts (a typo'd dataset, weights that do not fit) leaves ``out`` as it was, and
    :func:`start_run` writes the spec and the record once the run is ready to go.
    """
    check_out_dir(out)
    if (out / CONFIG).exists():
        check_same_run(out, record, identity, what=what, ignore=ignore)
        if all((out / name).exists() for name in outputs):
            return True
    return False


def start_run(out: Path, spec: BaseModel, record: dict[str, Any], spec_name: str = NETWORK) -> None:
    """Write ``spec`` (as ``spec_name``) and ``record`` (``config.json``) into ``out``, atomically."""
    out.mkdir(parents=True, exist_ok=True)
    save(spec, out / spec_name)
    write_json(out / CONFIG, record)


def forget_run(out: Path, patterns: tuple[str, ...]) -> list[Path]:
    """``--restart``: remove a run's checkpoint, record and the files matching ``patterns`` (globs
    relative to ``out``), so nothing of the old run outlives it; return what was removed."""
    removed: list[Path] = []
    for pattern in (CHECKPOINT, CONFIG, *patterns):
        for path in sorted(out.glob(pattern)):
            if path.is_file():
                path.unlink()
                removed.append(path)
    return removed


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file, then rename: never a half-written checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
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
        raise NasgalError(f"cannot read checkpoint {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                          hint=RESTART_HINT) from None


#: What to do about a checkpoint that cannot be continued.
RESTART_HINT = "start the run over with --restart (or remove the file), or use another --out directory"


def run_checkpoint(
    path: Path,
    stage: str,
    keys: tuple[str, ...],
    record: dict[str, Any] | None = None,
    identity: dict[str, str] | None = None,
    *,
    what: str = "run",
    map_location: str | torch.device = "cpu",
    ignore: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Load the checkpoint of a ``stage`` run ("train", "prune", "search") and check that it is one.

    It must be a dict with ``keys``, of this stage (checkpoints record theirs), and, when it
    records the run's identity (``run``, the ``config.json`` record), the same run as ``record``
    (:func:`compare_records`). Any mismatch is a :class:`NasgalError` naming the file.
    """
    ck = load_checkpoint(path, map_location=map_location)
    if not isinstance(ck, dict):
        raise NasgalError(f"{path} is not a nasgal checkpoint (it holds a {type(ck).__name__})", hint=RESTART_HINT)
    if ck.get("stage", stage) != stage:
        raise NasgalError(f"{path} is the checkpoint of a {ck['stage']} run, not of a {stage} run", hint=RESTART_HINT)
    missing = [k for k in keys if k not in ck]
    if missing:
        raise NasgalError(f"{path} is not the checkpoint of a nasgal {stage} run (no {', '.join(missing)})",
                          hint=RESTART_HINT)
    if record is not None and "run" in ck:
        try:
            old = json.loads(ck["run"])
        except (TypeError, ValueError):
            raise NasgalError(f"{path}: its run record is unreadable", hint=RESTART_HINT) from None
        if not isinstance(old, dict):
            raise NasgalError(f"{path}: its run record is not an object", hint=RESTART_HINT)
        compare_records(old, record, identity or {}, str(path), what, hint=RESTART_HINT, ignore=ignore)
    return ck


def run_record(record: dict[str, Any]) -> str:
    """A run record as checkpoints store it (JSON text: checkpoints hold plain data only)."""
    return json.dumps(_finite(record))


def load_state(module: torch.nn.Module | torch.optim.Optimizer | Any, state: Any, path: Path, part: str) -> None:
    """``module.load_state_dict(state)``, with a mismatch reported as the file's fault."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NasgalError(f"{path}: its {part} does not fit this run ({first})", hint=RESTART_HINT) from None


def environment(device: torch.device, seed: int) -> dict[str, Any]:
    import pydantic

    from .. import __version__
    from .distributed import world_size

    env: dict[str, Any] = {
        "nasgal": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pydantic": pydantic.VERSION,
        "platform": platform.platform(),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "seed": seed,
        "processes": world_size(),
    }
    if device.type == "cuda":
        env["cuda"] = torch.version.cuda
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def use_device(name: str, threads: int | None = None) -> torch.device:
    """The device of a run (:func:`resolve_device`), with torch's CPU threads set when asked.
    Under torchrun, ``auto`` and ``cuda`` mean the GPU of the process's local rank. On the CPU,
    freed memory stays in the process for the next step (:mod:`nasgal.engine.cpu`)."""
    from .distributed import device_for

    device = resolve_device(device_for(name))
    if threads:
        torch.set_num_threads(threads)
    if device.type == "cpu":
        from .cpu import keep_freed_memory, warn_once_if_busy

        keep_freed_memory()
        warning = None if threads else warn_once_if_busy(torch.get_num_threads())
        if warning:
            log.warning("%s", warning)
    return device


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
