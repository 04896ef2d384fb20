"""Reading, validating and writing spec files, with errors a person can act on."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Mapping, TypeVar, Union, get_args

from pydantic import BaseModel, Field, ValidationError

from ..errors import NasgalError, Problem, SpecError, join_location
from .base import SPEC_PROBLEMS
from .genotype import Genotype
from .limits import MAX_DEPTH, MAX_FILE_BYTES
from .network import Network
from .space import SearchSpace

M = TypeVar("M", bound=BaseModel)

#: Every spec file kind, told apart by its ``kind`` tag. A new kind is a model in the spec
#: layer added here (and gets a committed JSON Schema from ``nasgal schema``).
SpecFile = Annotated[Union[Genotype, Network, SearchSpace], Field(discriminator="kind")]

#: File kinds by their ``kind`` tag, read off :data:`SpecFile`.
KINDS: Mapping[str, type[BaseModel]] = MappingProxyType(
    {m.model_fields["kind"].default: m for m in get_args(get_args(SpecFile)[0])}
)


def _loc(parts: tuple) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in part or part in {"int", "str", "float", "bool", "list", "dict"}:
            continue  # pydantic's name of a union branch, not a place in the file
        else:
            out += ("." if out else "") + part
    return out


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def problems_of(err: ValidationError) -> list[Problem]:
    """One :class:`~nasgal.errors.Problem` per problem of a pydantic error, union branches merged.

    A model's own problems (cells, networks, search spaces) arrive as one pydantic entry that
    carries them all; each becomes its own problem, at its place inside that model.
    """
    merged: dict[str, list[str]] = {}
    for e in err.errors(include_url=False):
        loc = _loc(e["loc"])
        if e["type"] == SPEC_PROBLEMS:
            for inner, msg in e["ctx"]["problems"]:
                bucket = merged.setdefault(join_location(loc, inner), [])
                if msg not in bucket:
                    bucket.append(msg)
            continue
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field (not part of the spec; check the spelling)"
        elif e["type"] == "value_error" and "error" in e.get("ctx", {}):
            msg = str(e["ctx"]["error"])  # a validator's own words, without pydantic's "Value error, "
        elif e["type"] not in ("missing",) and not isinstance(e.get("input"), (dict, list)):
            msg = f"{msg} (got {_short(e.get('input'))})"
        bucket = merged.setdefault(loc, [])
        if msg not in bucket:
            bucket.append(msg)
    out: list[Problem] = []
    for loc, msgs in merged.items():
        inline = [m for m in msgs if m.startswith("Input should")]
        rest = [m for m in msgs if not m.startswith("Input should")]
        if inline:
            out.append(Problem(loc, " or ".join(inline)))
        out.extend(Problem(loc, m) for m in rest)
    return out


def data_problems(data: Any) -> list[Problem]:
    """Problems of decoded JSON that no model should see: nesting deeper than
    :data:`~nasgal.spec.limits.MAX_DEPTH` and text that is not valid Unicode (lone surrogates
    such as ``\\ud800``, which JSON escapes can produce but no file can store as UTF-8)."""
    out: list[Problem] = []
    todo: list[tuple[Any, str, int]] = [(data, "", 0)]
    while todo and len(out) < 10:
        value, loc, depth = todo.pop()
        if isinstance(value, str):
            if not _is_unicode(value):
                out.append(Problem(loc, f"text {ascii(value[:40])} is not valid Unicode (a lone surrogate)"))
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth >= MAX_DEPTH:
            out.append(Problem(loc, f"nested deeper than {MAX_DEPTH} levels; no spec is that deep"))
            continue
        if isinstance(value, dict):
            for k, v in value.items():
                key = str(k)
                if not _is_unicode(key):
                    out.append(Problem(loc, f"field name {ascii(key[:40])} is not valid Unicode (a lone surrogate)"))
                    continue
                todo.append((v, join_location(loc, key), depth + 1))
        else:
            todo.extend((v, f"{loc}[{i}]", depth + 1) for i, v in enumerate(value))
    return out


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_spec(model: type[M], data: Any, source: str | None = None) -> M:
    """Validate ``data`` as ``model``; raise :class:`SpecError` listing every problem."""
    bad = data_problems(data)
    if bad:
        raise SpecError(bad, source=source)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise SpecError(problems_of(err), source=source) from None


def parse_spec(data: Any, source: str | None = None) -> BaseModel:
    """Validate a decoded JSON object as whatever its ``kind`` says it is."""
    if not isinstance(data, dict):
        raise SpecError([("", f"expected a JSON object, got {type(data).__name__}")], source=source)
    bad = data_problems(data)
    if bad:
        raise SpecError(bad, source=source)
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        known = ", ".join(sorted(KINDS))
        what = "missing" if kind is None else f"unknown kind {kind!r}"
        raise SpecError([("kind", f"{what}; expected one of {known}")], source=source)
    return validate_spec(KINDS[kind], data, source=source)


def read_json(path: str | os.PathLike) -> Any:
    """Decoded JSON of a spec file no larger than :data:`~nasgal.spec.limits.MAX_FILE_BYTES`;
    any failure is a :class:`SpecError` naming the file."""
    p = Path(path)
    too_large = SpecError([("", f"larger than {MAX_FILE_BYTES // 2**20} MiB, the limit for a spec file")], source=str(p))
    try:
        if p.is_file() or not p.exists():
            if p.is_file() and p.stat().st_size > MAX_FILE_BYTES:
                raise too_large
            text = p.read_text(encoding="utf-8")
        else:  # a pipe or a device: read no more than the limit
            with p.open("rb") as f:
                raw = f.read(MAX_FILE_BYTES + 1)
            text = raw.decode("utf-8")
        if len(text) > MAX_FILE_BYTES:  # the file grew after its size was read
            raise too_large
    except FileNotFoundError:
        raise SpecError([("", "no such file")], source=str(p)) from None
    except IsADirectoryError:
        raise SpecError([("", "is a directory, not a spec file")], source=str(p)) from None
    except UnicodeDecodeError as e:
        raise SpecError([("", f"not UTF-8 text ({e.reason} at byte {e.start})")], source=str(p)) from None
    except OSError as e:
        raise SpecError([("", f"cannot be read ({e.strerror or e})")], source=str(p)) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError([(f"line {e.lineno} column {e.colno}", f"malformed JSON: {e.msg}")], source=str(p)) from None
    except RecursionError:
        raise SpecError([("", f"nested deeper than {MAX_DEPTH} levels; no spec is that deep")], source=str(p)) from None
    except ValueError as e:  # e.g. an integer with more digits than Python converts
        raise SpecError([("", f"malformed JSON: {e}")], source=str(p)) from None


def load(path: str | os.PathLike, kind: type[M] | None = None) -> Any:
    """Read any spec file and return the right model (genotype, network, ...).

    With ``kind`` given, the file must be of that kind.
    """
    data = read_json(path)
    spec = parse_spec(data, source=str(path))
    if kind is not None and not isinstance(spec, kind):
        want = next((k for k, m in KINDS.items() if m is kind), kind.__name__)
        raise SpecError([("kind", f"expected a {want} file, got {type(spec).__name__.lower()}")], source=str(path))
    return spec


def dumps(spec: BaseModel) -> str:
    """The canonical JSON text of a spec (what :func:`save` writes)."""
    return json.dumps(spec.model_dump(mode="json", by_alias=True, exclude_none=True), indent=2) + "\n"


def current_umask() -> int:
    """The process's file-creation mask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file and a rename: never a half-written file."""
    p = Path(path)
    if p.is_dir():
        raise NasgalError(f"cannot write {p}: it is a directory", hint="give a file name")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as e:
        raise NasgalError(f"cannot write {p}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def save(spec: BaseModel, path: str | os.PathLike) -> Path:
    """Write a spec as JSON, atomically."""
    atomic_write_text(path, dumps(spec))
    return Path(path)


def spec_hash(spec: BaseModel) -> str:
    """SHA-256 (first 16 hex digits) of the canonical JSON of a spec, ignoring ``$schema``."""
    data = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    data.pop("$schema", None)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
