"""Field selectors behave like Kubernetes' fields.ParseSelector."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netplane.model import FieldRequirement, FieldSelector, SelectorError, parse_field_selector
from netplane.model.fields import escape_value, unescape_value


def test_equality_and_inequality_terms_match_the_given_field_values() -> None:
    sel = parse_field_selector("metadata.name=web,spec.nodeName!=node-1")
    assert sel.matches({"metadata.name": "web", "spec.nodeName": "node-2"})
    assert not sel.matches({"metadata.name": "web", "spec.nodeName": "node-1"})
    assert not sel.matches({"metadata.name": "db", "spec.nodeName": "node-2"})


def test_double_equals_means_equals() -> None:
    assert parse_field_selector("a==b") == parse_field_selector("a=b")


def test_a_missing_field_reads_as_empty() -> None:
    assert parse_field_selector("spec.nodeName=").matches({})
    assert parse_field_selector("spec.nodeName!=").matches({"spec.nodeName": "n1"})
    assert not parse_field_selector("spec.nodeName!=").matches({})


def test_escaped_commas_equals_and_backslashes_belong_to_the_value() -> None:
    sel = parse_field_selector(r"a=x\,y\=z\\w,b=c")
    assert sel.requirements == (FieldRequirement("a", True, "x,y=z\\w"),
                                FieldRequirement("b", True, "c"))
    assert str(sel) == r"a=x\,y\=z\\w,b=c"


def test_the_empty_selector_matches_everything() -> None:
    sel = parse_field_selector("")
    assert sel == FieldSelector.everything()
    assert sel.empty
    assert sel.matches({"a": "b"})


def test_fields_lists_the_names_a_selector_uses() -> None:
    sel = parse_field_selector("spec.nodeName=a,metadata.name!=b,spec.nodeName!=c")
    assert sel.fields() == ["metadata.name", "spec.nodeName"]
    assert sel.value_for("spec.nodeName") == "a"
    assert sel.value_for("metadata.name") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "invalid selector: 'abc'; can't understand 'abc'"),
        (r"a=b\x", r"invalid field selector: invalid escape sequence: \x"),
        ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
        ("a=b=c", "invalid field selector: unescaped character in value: ="),
    ],
)
def test_bad_field_selectors_raise_selector_error(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_field_selector(text)
    assert str(info.value) == message


@given(st.text(max_size=20))
def test_escaping_then_unescaping_returns_the_value(value: str) -> None:
    assert unescape_value(escape_value(value)) == value


@given(st.lists(st.tuples(st.from_regex(r"[a-zA-Z.]{1,10}", fullmatch=True), st.booleans(),
                          st.text(max_size=10)), max_size=4))
def test_rendering_then_parsing_gives_back_the_same_field_selector(
    terms: list[tuple[str, bool, str]]
) -> None:
    sel = FieldSelector(tuple(FieldRequirement(f, eq, v) for f, eq, v in terms))
    assert parse_field_selector(str(sel)) == sel


@given(st.text(max_size=30))
def test_random_field_selector_text_parses_or_raises_selector_error(text: str) -> None:
    with contextlib.suppress(SelectorError):
        parse_field_selector(text)
