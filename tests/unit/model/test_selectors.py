"""Label selectors behave like Kubernetes' labels.Parse and LabelSelectorAsSelector."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netplane.model import (
    LabelSelector,
    Operator,
    Requirement,
    Selector,
    SelectorError,
    parse_selector,
    selector_from_label_selector,
    selector_from_set,
)


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("a=b", {"a": "b"}, True),
        ("a=b", {"a": "c"}, False),
        ("a=b", {}, False),
        ("a==b", {"a": "b"}, True),
        ("a!=b", {"a": "c"}, True),
        ("a!=b", {}, True),
        ("a!=b", {"a": "b"}, False),
        ("a in (x,y)", {"a": "y"}, True),
        ("a in (x,y)", {"a": "z"}, False),
        ("a in (x,y)", {}, False),
        ("a notin (x)", {"a": "y"}, True),
        ("a notin (x)", {}, True),
        ("a notin (x)", {"a": "x"}, False),
        ("a", {"a": ""}, True),
        ("a", {"b": "c"}, False),
        ("!a", {"b": "c"}, True),
        ("!a", {"a": "c"}, False),
        ("a=b,c=d", {"a": "b", "c": "d"}, True),
        ("a=b,c=d", {"a": "b"}, False),
        ("a>3", {"a": "4"}, True),
        ("a>3", {"a": "3"}, False),
        ("a<3", {"a": "2"}, True),
        ("a<3", {"a": "x"}, False),
        ("a=", {"a": ""}, True),
        ("a in ()", {"a": ""}, True),
        ("", {"anything": "goes"}, True),
        ("example.com/app=web", {"example.com/app": "web"}, True),
    ],
)
def test_a_parsed_selector_matches_labels_as_kubernetes_does(
    text: str, labels: dict[str, str], expected: bool
) -> None:
    assert parse_selector(text).matches(labels) is expected


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("  a = b ,  c  in ( y , x ) ", "a=b,c in (x,y)"),
        ("z=1,a=2", "a=2,z=1"),
        ("a notin (b,a,b)", "a notin (a,b)"),
        ("!x,y", "!x,y"),
        ("a==b", "a==b"),
        ("a in (,x)", "a in (,x)"),
        ("a in (x,,y)", "a in (,x,y)"),
        ("x>1", "x>1"),
        ("a\tin\n(x)", "a in (x)"),
    ],
)
def test_rendering_gives_the_canonical_string(text: str, canonical: str) -> None:
    assert str(parse_selector(text)) == canonical


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a=b,", "found '', expected: identifier after ','"),
        (",a", "found ',', expected: !, identifier, or 'end of string'"),
        ("a b", "found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("a in x", "found 'x', expected: '('"),
        ("a in (x", "found '', expected: ',' or ')'"),
        ("a in (x y)", "found 'y', expected: ',' or ')'"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        ("!", "found '', expected: identifier"),
        ("a=(", "found '(', expected: identifier"),
        ("a in (=)", "found '=', expected: ',', ')' or identifier"),
        ("a>x", "for 'Gt', 'Lt' operators, the value must be an integer"),
        ("-a=b", "name part must consist of alphanumeric characters"),
        ("a=-b", "a valid label must be an empty string"),
        ("a/b/c=d", "a qualified name must consist of"),
        ("/a=b", "prefix part must be non-empty"),
        ("a=" + "x" * 64, "must be no more than 63 characters"),
    ],
)
def test_bad_selectors_raise_selector_error_with_kubernetes_wording(
    text: str, message: str
) -> None:
    with pytest.raises(SelectorError) as info:
        parse_selector(text)
    assert message in str(info.value)


def test_everything_matches_all_labels_and_nothing_matches_none() -> None:
    assert Selector.everything().matches({"a": "b"})
    assert Selector.everything().matches({})
    assert Selector.everything().empty
    assert not Selector.nothing().matches({})
    assert not Selector.nothing().empty
    assert Selector.everything() != Selector.nothing()


def test_selectors_compare_equal_regardless_of_term_order() -> None:
    assert parse_selector("a=b,c=d") == parse_selector("c=d, a=b")
    assert parse_selector("a in (x,y)") == parse_selector("a in (y,x)")
    assert parse_selector("a=b") != parse_selector("a==b")


def test_a_nil_label_selector_matches_nothing_and_an_empty_one_everything() -> None:
    assert selector_from_label_selector(None) == Selector.nothing()
    assert selector_from_label_selector({}) == Selector.everything()
    assert selector_from_label_selector(LabelSelector()) == Selector.everything()


def test_a_label_selector_object_combines_match_labels_and_expressions() -> None:
    sel = selector_from_label_selector({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["front", "edge"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "team", "operator": "Exists"},
        ],
    })
    assert str(sel) == "app=web,!canary,env notin (dev),team,tier in (edge,front)"
    assert sel.matches({"app": "web", "tier": "edge", "team": "x"})
    assert not sel.matches({"app": "web", "tier": "edge", "team": "x", "canary": "1"})
    assert not sel.matches({"app": "web", "tier": "edge"})


def test_typed_label_selectors_build_the_same_selector_as_dicts() -> None:
    raw = {"matchLabels": {"a": "b"},
           "matchExpressions": [{"key": "c", "operator": "In", "values": ["d"]}]}
    from netplane.model import decode
    assert selector_from_label_selector(decode(LabelSelector, raw)) == \
        selector_from_label_selector(raw)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ({"key": "a", "operator": "In", "values": []}, "must be specified when `operator`"),
        ({"key": "a", "operator": "NotIn"}, "must be specified when `operator`"),
        ({"key": "a", "operator": "Exists", "values": ["x"]}, "may not be specified"),
        ({"key": "a", "operator": "DoesNotExist", "values": ["x"]}, "may not be specified"),
        ({"key": "a", "operator": "Gt", "values": ["1"]},
         '"Gt" is not a valid label selector operator'),
        ({"key": "a b", "operator": "Exists"}, "name part must consist"),
    ],
)
def test_invalid_label_selector_objects_are_rejected(
    expression: dict[str, object], message: str
) -> None:
    with pytest.raises(SelectorError) as info:
        selector_from_label_selector({"matchExpressions": [expression]})
    assert message in str(info.value)


def test_a_selector_from_a_set_requires_every_label() -> None:
    sel = selector_from_set({"app": "web", "tier": "front"})
    assert str(sel) == "app=web,tier=front"
    assert sel.matches({"app": "web", "tier": "front", "x": "y"})
    assert not sel.matches({"app": "web"})


def test_requirements_validate_operator_arity() -> None:
    with pytest.raises(SelectorError, match="exact-match compatibility"):
        Requirement.new("a", Operator.EQUALS, ["x", "y"])
    with pytest.raises(SelectorError, match="values set must be empty"):
        Requirement.new("a", Operator.EXISTS, ["x"])
    with pytest.raises(SelectorError, match="values set can't be empty"):
        Requirement.new("a", Operator.IN, [])


def test_adding_to_nothing_still_matches_nothing() -> None:
    req = Requirement.new("a", Operator.EXISTS)
    assert not Selector.nothing().add(req).matches({"a": "b"})
    assert Selector.everything().add(req).matches({"a": "b"})


# ---- properties --------------------------------------------------------------------

_name = st.from_regex(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?", fullmatch=True)
_prefix = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,5}[a-z0-9])?(\.[a-z0-9]{1,5}){0,2}",
                        fullmatch=True)
_key = st.one_of(_name, st.builds(lambda p, n: f"{p}/{n}", _prefix, _name))
_value = st.one_of(st.just(""), _name)


@st.composite
def _requirements(draw: st.DrawFn) -> Requirement:
    op = draw(st.sampled_from(list(Operator)))
    key = draw(_key)
    if op in (Operator.IN, Operator.NOT_IN):
        values = draw(st.lists(_value, min_size=1, max_size=4))
    elif op in (Operator.EXISTS, Operator.DOES_NOT_EXIST):
        values = []
    elif op in (Operator.GREATER_THAN, Operator.LESS_THAN):
        # Kubernetes also checks Gt/Lt values as label values, so "-1" is invalid.
        values = [str(draw(st.integers(0, 1000)))]
    else:
        values = [draw(_value)]
    return Requirement.new(key, op, values)


@given(st.lists(_requirements(), max_size=5))
def test_rendering_then_parsing_gives_back_the_same_selector(reqs: list[Requirement]) -> None:
    sel = Selector(tuple(reqs))
    assert parse_selector(str(sel)) == sel


@given(st.lists(_requirements(), max_size=5),
       st.dictionaries(_key, _value, max_size=5))
def test_a_reparsed_selector_matches_the_same_labels(
    reqs: list[Requirement], labels: dict[str, str]
) -> None:
    sel = Selector(tuple(reqs))
    assert parse_selector(str(sel)).matches(labels) == sel.matches(labels)


@given(st.text(alphabet=st.sampled_from(list("ab=!(),<> \tin1-./_xz")), max_size=30))
def test_random_selector_text_parses_or_raises_selector_error(text: str) -> None:
    with contextlib.suppress(SelectorError):
        parse_selector(text)


@given(st.text(max_size=30))
def test_arbitrary_unicode_parses_or_raises_selector_error(text: str) -> None:
    with contextlib.suppress(SelectorError):
        parse_selector(text)
