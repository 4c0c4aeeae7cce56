"""Reading manifests: files and folders (recursively), multi-document YAML, JSON streams,
`List` kinds and stdin ("-"). Every object keeps where it came from, for error messages."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SUFFIXES = (".yaml", ".yml", ".json")

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ManifestError(Exception):
    """A manifest that cannot be used; names the file (and document) and the problem."""


@dataclass(frozen=True)
class Manifest:
    obj: dict[str, Any]
    source: str  # "app/shop.yaml (document 2)"

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        return (self.obj.get("metadata") or {}).get("namespace") or None


class _Loader(_Base):  # type: ignore[misc,valid-type]
    """Safe YAML as kubectl reads it: timestamps stay strings (they are strings in the API),
    and a key given twice in one mapping is an error rather than silently the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                continue  # the base class raises its own error for these
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f'key "{key}" already set in map', key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()
}


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
    if not path.exists():
        raise ManifestError(f"{path}: no such file or directory")
    return [path]


def _jsonable(value: Any, where: str) -> Any:
    """The value as JSON can hold it: YAML's non-string keys become strings (as kubectl's
    YAML-to-JSON conversion does); values JSON has no type for are an error."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = ("true" if k else "false") if isinstance(k, bool) else ("null" if k is None else str(k))
            out[key] = _jsonable(v, where)
        return out
    if isinstance(value, list):
        return [_jsonable(v, where) for v in value]
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise ManifestError(f"{where}: a {type(value).__name__} value has no JSON form; quote it")


def _yaml_documents(text: str, file: str) -> Iterator[Any]:
    loader = _Loader(text)
    index = 0
    try:
        while loader.check_data():
            index += 1
            yield loader.get_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ManifestError(f"{file} (document {index + 1}): not valid YAML{at}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"{file} (document {index + 1}): not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def _json_documents(text: str, file: str) -> Iterator[Any]:
    """A JSON file holds one value or a stream of them, as kubectl accepts."""
    decoder = json.JSONDecoder()
    pos, index = 0, 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return
        index += 1
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{file} (document {index}): not valid JSON at line {exc.lineno}, "
                                f"column {exc.colno}: {exc.msg}") from None
        yield doc


def _flatten(doc: dict[str, Any], where: str) -> list[Manifest]:
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
        out: list[Manifest] = []
        for i, item in enumerate(doc["items"]):
            if not isinstance(item, dict):
                raise ManifestError(f"{where} item {i}: expected an object, found {_type(item)}")
            out.extend(_flatten(item, f"{where} item {i}"))
        return out
    for field in ("apiVersion", "kind"):
        if not isinstance(doc.get(field), str) or not doc[field]:
            raise ManifestError(f"{where}: the object has no {field}")
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        hint = "; generateName needs `create`, not apply" if isinstance(meta, dict) and \
            meta.get("generateName") else ""
        raise ManifestError(f"{where}: the {doc['kind']} has no metadata.name{hint}")
    return [Manifest(doc, where)]


def _type(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number",
            bool: "a boolean"}.get(type(value), type(value).__name__)


def parse(text: str, file: str, *, as_json: bool = False) -> list[Manifest]:
    """The objects in one file's text (`file` only names it in errors)."""
    out: list[Manifest] = []
    docs = _json_documents(text, file) if as_json else _yaml_documents(text, file)
    for i, doc in enumerate(docs, start=1):
        if doc is None:
            continue
        where = f"{file} (document {i})"
        if not isinstance(doc, dict):
            raise ManifestError(f"{where}: expected an object, found {_type(doc)}")
        out.extend(_flatten(_jsonable(doc, where), where))
    return out


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ManifestError(f"{file}: cannot read: {exc.strerror}") from None


def load(paths: Sequence[str | Path]) -> list[Manifest]:
    """Every object in `paths`, in order (folders: their .yaml/.yml/.json files by path)."""
    objects: list[Manifest] = []
    for raw in paths:
        if str(raw) == "-":
            objects.extend(parse(sys.stdin.read(), "<stdin>"))
            continue
        for file in _files(Path(raw)):
            objects.extend(parse(_read(file), str(file), as_json=file.suffix == ".json"))
    if not objects:
        raise ManifestError(f"no objects found in {', '.join(str(p) for p in paths)}")
    return objects
