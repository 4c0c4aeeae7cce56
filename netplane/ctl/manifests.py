"""Reading manifests: files and folders, multi-document YAML or JSON, `List` kinds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SUFFIXES = (".yaml", ".yml", ".json")


class ManifestError(Exception):
    """A manifest that cannot be used; names the file (and document) and the problem."""


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
    if not path.exists():
        raise ManifestError(f"{path}: no such file or directory")
    return [path]


def _flatten(doc: dict[str, Any], where: str) -> list[dict[str, Any]]:
    if str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
        out = []
        for i, item in enumerate(doc["items"]):
            out.extend(_flatten(item, f"{where} item {i}") if isinstance(item, dict) else [])
        return out
    for field in ("apiVersion", "kind"):
        if not doc.get(field):
            raise ManifestError(f"{where}: the object has no {field}")
    if not (doc.get("metadata") or {}).get("name") and not (doc.get("metadata") or {}).get("generateName"):
        raise ManifestError(f"{where}: the object has no metadata.name")
    return [doc]


def load(paths: list[str | Path]) -> list[dict[str, Any]]:
    """Every object in `paths`, in order (folders: files sorted by path, recursively)."""
    objects: list[dict[str, Any]] = []
    for raw in paths:
        for file in _files(Path(raw)):
            try:
                docs = list(yaml.safe_load_all(file.read_text()))
            except yaml.YAMLError as exc:
                raise ManifestError(f"{file}: not valid YAML or JSON: {exc}".splitlines()[0]) from exc
            except (OSError, UnicodeDecodeError) as exc:
                raise ManifestError(f"{file}: cannot read: {exc}") from exc
            for i, doc in enumerate(docs):
                if doc is None:
                    continue
                where = f"{file} (document {i + 1})"
                if not isinstance(doc, dict):
                    raise ManifestError(f"{where}: expected an object, found {type(doc).__name__}")
                objects.extend(_flatten(doc, where))
    if not objects:
        raise ManifestError(f"no objects found in {', '.join(str(p) for p in paths)}")
    return objects
