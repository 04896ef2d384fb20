"""JSON Schemas of the spec file kinds, generated from the pydantic models.

``schemas/<kind>.schema.json`` is committed so editors validate and complete hand-edited
files (every spec file names its schema in ``$schema``); a test fails when a committed
schema is stale, and ``nasgal schema`` regenerates them. Output is stable: sorted keys,
two-space indent, trailing newline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .io import KINDS, atomic_write_text

#: JSON Schema dialect pydantic generates.
DIALECT = "https://json-schema.org/draft/2020-12/schema"

#: Default output folder: ``schemas/`` of the repository.
REPO_SCHEMAS = Path(__file__).resolve().parent.parent.parent / "schemas"


def _describe_tags(node: Any) -> None:
    """Give a variant tag (a ``const`` property) without a description one naming its value."""
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            for name, prop in props.items():
                if isinstance(prop, dict) and "description" not in prop and "const" in prop:
                    prop["description"] = f"Variant tag: {json.dumps(prop['const'])}."
        for v in node.values():
            _describe_tags(v)
    elif isinstance(node, list):
        for v in node:
            _describe_tags(v)


def registered_kinds() -> dict[str, type[BaseModel]]:
    """Every spec file kind and its model (the members of :data:`nasgal.spec.io.SpecFile`), by tag."""
    return {k: KINDS[k] for k in sorted(KINDS)}


def schema_filename(kind: str) -> str:
    return f"{kind}.schema.json"


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of one spec kind (``genotype``, ``network``, ...)."""
    kinds = registered_kinds()
    if kind not in kinds:
        raise KeyError(f"unknown spec kind {kind!r}; known kinds: {', '.join(kinds)}")
    model = kinds[kind]
    schema = model.model_json_schema(by_alias=True)
    _describe_tags(schema)
    version = getattr(model.model_fields.get("format_version"), "default", None)
    out: dict[str, Any] = {
        "$schema": DIALECT,
        "$id": f"urn:nasgal:schema:{kind}" + (f":{version}" if version is not None else ""),
    }
    out.update(schema)
    out["title"] = f"nasgal {kind}" + (f" (format {version})" if version is not None else "")
    return out


def dumps_schema(schema: dict[str, Any]) -> str:
    """Stable text of a schema: sorted keys, two-space indent, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate_schemas() -> dict[str, str]:
    """File name -> schema text, for every registered kind."""
    return {schema_filename(k): dumps_schema(json_schema(k)) for k in registered_kinds()}


def stale_schemas(out_dir: str | os.PathLike = REPO_SCHEMAS) -> list[str]:
    """Schema files in ``out_dir`` that are missing or differ from freshly generated ones,
    plus ``*.schema.json`` files there that no registered kind produces."""
    d = Path(out_dir)
    fresh = generate_schemas()
    stale = []
    for name, text in fresh.items():
        path = d / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    if d.is_dir():
        stale.extend(sorted(p.name for p in d.glob("*.schema.json") if p.name not in fresh))
    return stale


def write_schemas(out_dir: str | os.PathLike = REPO_SCHEMAS) -> list[Path]:
    """(Re)write every schema into ``out_dir`` atomically; return the files that changed."""
    d = Path(out_dir)
    changed = []
    for name, text in generate_schemas().items():
        path = d / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            atomic_write_text(path, text)
            changed.append(path)
    return changed


__all__ = [
    "REPO_SCHEMAS",
    "dumps_schema",
    "generate_schemas",
    "json_schema",
    "registered_kinds",
    "schema_filename",
    "stale_schemas",
    "write_schemas",
]
