"""Kubernetes field selectors (`metadata.name=x,spec.nodeName!=y`), k8s.io/apimachinery
fields.ParseSelector: parsing with its escaping rules, matching and rendering."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from netplane.model.selectors import SelectorError

# Order matters: "!=" and "==" must win over their "=" suffix (Kubernetes' termOperators).
_OPERATORS = ("!=", "==", "=")


def escape_value(value: str) -> str:
    """Kubernetes' fields.EscapeValue: backslash-escape '\\', ',' and '='."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def unescape_value(value: str) -> str:
    """Kubernetes' fields.UnescapeValue; raises SelectorError on a bad sequence."""
    if not any(c in value for c in "\\,="):
        return value
    out: list[str] = []
    in_slash = False
    for ch in value:
        if in_slash:
            if ch not in "\\,=":
                raise SelectorError(
                    f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            in_slash = False
        elif ch == "\\":
            in_slash = True
        elif ch in ",=":
            raise SelectorError(
                f"invalid field selector: unescaped character in value: {ch}")
        else:
            out.append(ch)
    if in_slash:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not escaped (a backslash escapes the next character)."""
    terms: list[str] = []
    start = 0
    escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    # Like Kubernetes' splitTerm, the first operator occurrence wins, escapes or not.
    for i in range(len(term)):
        for op in _OPERATORS:
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


@dataclass(frozen=True, order=True)
class FieldRequirement:
    """`field = value` (equal) or `field != value` (not equal)."""

    field: str
    equal: bool
    value: str

    def matches(self, fields: Mapping[str, str]) -> bool:
        # A field the caller did not supply reads as "", as in fields.Set.Get.
        return (fields.get(self.field, "") == self.value) == self.equal

    def __str__(self) -> str:
        return f"{self.field}{'=' if self.equal else '!='}{escape_value(self.value)}"


@dataclass(frozen=True)
class FieldSelector:
    """A conjunction of field requirements; no requirements matches everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "requirements", tuple(sorted(set(self.requirements))))

    @classmethod
    def everything(cls) -> FieldSelector:
        return cls()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def fields(self) -> list[str]:
        """The field names the selector refers to, so a server can reject unknown ones."""
        return sorted({r.field for r in self.requirements})

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all(r.matches(fields) for r in self.requirements)

    def value_for(self, field: str) -> str | None:
        """The value an equality requirement pins `field` to (Kubernetes'
        RequiresExactMatch), for indexing; None when there is none."""
        for r in self.requirements:
            if r.field == field and r.equal:
                return r.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def parse_field_selector(text: str) -> FieldSelector:
    """Parse `a=b,c!=d`; values may escape ',', '=' and '\\' with a backslash."""
    reqs: list[FieldRequirement] = []
    for term in sorted(_split_terms(text)):
        if term == "":
            continue
        parts = _split_term(term)
        if parts is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{term}'")
        lhs, op, rhs = parts
        reqs.append(FieldRequirement(lhs, op != "!=", unescape_value(rhs)))
    return FieldSelector(tuple(reqs))
