"""Kubernetes label selectors: the string syntax of labels.Parse, LabelSelector objects,
matching and canonical rendering."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from netplane.model.fielderrors import go_quote, go_value
from netplane.model.meta import LabelSelector
from netplane.model.names import is_qualified_name, is_valid_label_value


class SelectorError(ValueError):
    """A selector that cannot be parsed or built; the message reads like Kubernetes'."""


class Operator(StrEnum):
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GREATER_THAN = "gt"
    LESS_THAN = "lt"


_SET_OPS = (Operator.IN, Operator.NOT_IN)
_EXACT_OPS = (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS)
_PRESENCE_OPS = (Operator.EXISTS, Operator.DOES_NOT_EXIST)
_NUMERIC_OPS = (Operator.GREATER_THAN, Operator.LESS_THAN)


def _is_int64(value: str) -> bool:
    # strconv.ParseInt(v, 10, 64): optional sign, decimal digits, within int64.
    body = value[1:] if value[:1] in ("+", "-") else value
    if not body.isascii() or not body.isdigit():
        return False
    return -(2**63) <= int(value) < 2**63


@dataclass(frozen=True, order=True)
class Requirement:
    """One term of a selector; build with `Requirement.new`, which validates."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    @classmethod
    def new(cls, key: str, operator: Operator | str, values: Iterable[str] = ()) -> Requirement:
        """Kubernetes' NewRequirement: validate key, operator arity and values."""
        op = Operator(operator)
        vals = tuple(values)
        errs: list[str] = []
        key_errs = is_qualified_name(key)
        if key_errs:
            errs.append(f"key: Invalid value: {go_quote(key)}: {'; '.join(key_errs)}")
        if op in _SET_OPS and not vals:
            errs.append(f"values: Invalid value: {go_value(list(vals))}: for 'in', 'notin' "
                        "operators, values set can't be empty")
        elif op in _EXACT_OPS and len(vals) != 1:
            errs.append(f"values: Invalid value: {go_value(list(vals))}: exact-match "
                        "compatibility requires one single value")
        elif op in _PRESENCE_OPS and vals:
            errs.append(f"values: Invalid value: {go_value(list(vals))}: values set must be "
                        "empty for exists and does not exist")
        elif op in _NUMERIC_OPS:
            if len(vals) != 1:
                errs.append(f"values: Invalid value: {go_value(list(vals))}: for 'Gt', 'Lt' "
                            "operators, exactly one value is required")
            errs.extend(
                f"values[{i}]: Invalid value: {go_quote(v)}: for 'Gt', 'Lt' operators, the "
                "value must be an integer" for i, v in enumerate(vals) if not _is_int64(v))
        for i, v in enumerate(vals):
            value_errs = is_valid_label_value(v)
            if value_errs:
                errs.append(f"values[{i}][{key}]: Invalid value: {go_quote(v)}: "
                            + "; ".join(value_errs))
        if errs:
            raise SelectorError(errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]")
        # Sets render sorted and de-duplicated, as Kubernetes' sets.String does.
        canonical = tuple(sorted(set(vals))) if op in _SET_OPS else vals
        return cls(key, op, canonical)

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op in (Operator.IN, Operator.EQUALS, Operator.DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (Operator.NOT_IN, Operator.NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op is Operator.EXISTS:
            return self.key in labels
        if op is Operator.DOES_NOT_EXIST:
            return self.key not in labels
        # Gt/Lt: a missing or non-integer label never matches.
        if self.key not in labels or not _is_int64(labels[self.key]):
            return False
        have, want = int(labels[self.key]), int(self.values[0])
        return have > want if op is Operator.GREATER_THAN else have < want

    def __str__(self) -> str:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key
        if op is Operator.DOES_NOT_EXIST:
            return "!" + self.key
        if op in _SET_OPS:
            return f"{self.key} {op.value} ({','.join(self.values)})"
        if op is Operator.GREATER_THAN:
            return f"{self.key}>{self.values[0]}"
        if op is Operator.LESS_THAN:
            return f"{self.key}<{self.values[0]}"
        return f"{self.key}{op.value}{self.values[0]}"


@dataclass(frozen=True)
class Selector:
    """A conjunction of requirements. `Selector.everything()` (no requirements) matches
    every label set; `Selector.nothing()` matches none (Kubernetes' nil selector)."""

    requirements: tuple[Requirement, ...] = ()
    is_nothing: bool = field(default=False)

    def __post_init__(self) -> None:
        # Canonical order makes equality and rendering independent of input order.
        object.__setattr__(self, "requirements", tuple(sorted(set(self.requirements))))

    @classmethod
    def everything(cls) -> Selector:
        return cls()

    @classmethod
    def nothing(cls) -> Selector:
        return cls(is_nothing=True)

    @property
    def empty(self) -> bool:
        """True for the selector that matches everything (Kubernetes' Selector.Empty)."""
        return not self.is_nothing and not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.is_nothing:
            return False
        have = labels or {}
        return all(r.matches(have) for r in self.requirements)

    def add(self, *requirements: Requirement) -> Selector:
        if self.is_nothing:
            return self
        return Selector(self.requirements + requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


# ---- the string syntax --------------------------------------------------------------

_SPECIAL = "=!(),<>"
_WHITESPACE = " \t\r\n"
_SYMBOLS = ("!=", "==", "=", "!", "(", ")", ",", ">", "<")


def _tokenize(text: str) -> list[str]:
    """Kubernetes' selector lexer: symbols, and identifiers ended by whitespace or a
    symbol. The empty string marks the end."""
    tokens: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in _WHITESPACE:
            i += 1
        elif ch in _SPECIAL:
            sym = next(s for s in _SYMBOLS if text.startswith(s, i))
            tokens.append(sym)
            i += len(sym)
        else:
            j = i
            while j < n and text[j] not in _WHITESPACE and text[j] not in _SPECIAL:
                j += 1
            tokens.append(text[i:j])
            i = j
    tokens.append("")
    return tokens


def _is_identifier(token: str) -> bool:
    return token != "" and token not in _SYMBOLS


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self) -> str:
        return self.tokens[self.pos]

    def take(self) -> str:
        tok = self.tokens[self.pos]
        if tok != "":
            self.pos += 1
        return tok

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok = self.peek()
            if tok == "":
                return reqs
            if not (_is_identifier(tok) or tok == "!"):
                raise SelectorError(
                    f"found '{tok}', expected: !, identifier, or 'end of string'")
            reqs.append(self.requirement())
            tok = self.take()
            if tok == "":
                return reqs
            if tok != ",":
                raise SelectorError(f"found '{tok}', expected: ',' or 'end of string'")
            nxt = self.peek()
            if not (_is_identifier(nxt) or nxt == "!"):
                raise SelectorError(f"found '{nxt}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        negated = False
        tok = self.take()
        if tok == "!":
            negated = True
            tok = self.take()
        if not _is_identifier(tok):
            raise SelectorError(f"found '{tok}', expected: identifier")
        key = tok
        key_errs = is_qualified_name(key)
        if key_errs:
            raise SelectorError(f"key: Invalid value: {go_quote(key)}: {'; '.join(key_errs)}")
        if negated:
            return Requirement.new(key, Operator.DOES_NOT_EXIST)
        if self.peek() in ("", ","):
            return Requirement.new(key, Operator.EXISTS)
        op = self.operator()
        values = self.set_values() if op in _SET_OPS else self.exact_value()
        return Requirement.new(key, op, values)

    def operator(self) -> Operator:
        tok = self.take()
        ops = {"in": Operator.IN, "notin": Operator.NOT_IN, "=": Operator.EQUALS,
               "==": Operator.DOUBLE_EQUALS, "!=": Operator.NOT_EQUALS,
               ">": Operator.GREATER_THAN, "<": Operator.LESS_THAN}
        if tok not in ops:
            raise SelectorError(
                f"found '{tok}', expected: in, notin, =, ==, !=, gt, lt")
        return ops[tok]

    def exact_value(self) -> list[str]:
        if self.peek() in ("", ","):
            return [""]
        tok = self.take()
        if _is_identifier(tok):
            return [tok]
        raise SelectorError(f"found '{tok}', expected: identifier")

    def set_values(self) -> list[str]:
        tok = self.take()
        if tok != "(":
            raise SelectorError(f"found '{tok}', expected: '('")
        tok = self.peek()
        if tok == ")":
            self.take()
            return [""]
        if not (_is_identifier(tok) or tok == ","):
            raise SelectorError(f"found '{tok}', expected: ',', ')' or identifier")
        values = self.identifier_list()
        tok = self.take()
        if tok != ")":
            raise SelectorError(f"found '{tok}', expected: ')'")
        return values

    def identifier_list(self) -> list[str]:
        # Mirrors parseIdentifiersList, including "(,a)" and "(a,,b)" meaning "" is a member.
        values: list[str] = []
        while True:
            tok = self.take()
            if _is_identifier(tok):
                values.append(tok)
                nxt = self.peek()
                if nxt == ",":
                    continue
                if nxt == ")":
                    return values
                raise SelectorError(f"found '{nxt}', expected: ',' or ')'")
            if tok == ",":
                if not values:
                    values.append("")
                nxt = self.peek()
                if nxt == ")":
                    values.append("")
                    return values
                if nxt == ",":
                    self.take()
                    values.append("")
                continue
            raise SelectorError(f"found '{tok}', expected: ',', or identifier")


def parse_selector(text: str) -> Selector:
    """Parse the string form (`a=b,c in (x,y),!d`); "" is the everything selector."""
    return Selector(tuple(_Parser(text).parse()))


def selector_from_set(labels: Mapping[str, str]) -> Selector:
    """Kubernetes' SelectorFromValidatedSet for a plain map: every key equals its value."""
    return Selector(tuple(Requirement.new(k, Operator.EQUALS, [v]) for k, v in labels.items()))


_EXPRESSION_OPS = {"In": Operator.IN, "NotIn": Operator.NOT_IN,
                   "Exists": Operator.EXISTS, "DoesNotExist": Operator.DOES_NOT_EXIST}


def selector_from_label_selector(
    selector: LabelSelector | Mapping[str, Any] | None,
) -> Selector:
    """Kubernetes' LabelSelectorAsSelector: None matches nothing, {} matches everything."""
    if selector is None:
        return Selector.nothing()
    if isinstance(selector, LabelSelector):
        match_labels: Mapping[str, str] = selector.match_labels
        expressions = [(e.key, e.operator, list(e.values)) for e in selector.match_expressions]
    else:
        match_labels = selector.get("matchLabels") or {}
        expressions = [(e.get("key", ""), e.get("operator", ""), list(e.get("values") or []))
                       for e in selector.get("matchExpressions") or []]
    reqs = [Requirement.new(k, Operator.EQUALS, [v]) for k, v in match_labels.items()]
    for key, operator, values in expressions:
        op = _EXPRESSION_OPS.get(operator)
        if op is None:
            raise SelectorError(f"{go_quote(operator)} is not a valid label selector operator")
        if op in _SET_OPS and not values:
            raise SelectorError("values: Required value: must be specified when `operator` is "
                                "'In' or 'NotIn'")
        if op in _PRESENCE_OPS and values:
            raise SelectorError("values: Forbidden: may not be specified when `operator` is "
                                "'Exists' or 'DoesNotExist'")
        reqs.append(Requirement.new(key, op, values))
    return Selector(tuple(reqs))
