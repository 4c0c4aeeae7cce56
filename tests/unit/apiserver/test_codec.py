"""The stored form of objects, and the spliced JSON lists are built from."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from control.apiserver.codec import decode_kv, encode, encode_kv
from control.store import KeyValue

_json = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(), inner, max_size=3), max_leaves=10)


def test_the_stored_form_has_no_resource_version_and_starts_with_metadata() -> None:
    obj = {"kind": "Service", "metadata": {"name": "web", "resourceVersion": "7"}, "spec": {}}
    stored = encode(obj)
    assert stored.startswith(b'{"metadata":{"name":"web"}')
    assert b"resourceVersion" not in stored
    assert obj["metadata"]["resourceVersion"] == "7"  # the caller's object is untouched


def test_field_order_does_not_change_the_stored_bytes() -> None:
    a = {"spec": {"b": 1, "a": 2}, "metadata": {"name": "x", "labels": {}}, "kind": "K"}
    b = {"kind": "K", "metadata": {"labels": {}, "name": "x"}, "spec": {"a": 2, "b": 1}}
    assert encode(a) == encode(b)


@given(meta=st.dictionaries(st.text(), _json, max_size=4),
       rest=st.dictionaries(st.text().filter(lambda k: k != "metadata"), _json, max_size=4),
       revision=st.integers(min_value=1, max_value=2**62))
def test_spliced_json_equals_decoding_and_re_encoding(
        meta: dict[str, object], rest: dict[str, object], revision: int) -> None:
    meta.pop("resourceVersion", None)
    kv = KeyValue("/k", encode({"metadata": meta, **rest}), 1, revision)
    assert orjson.loads(encode_kv(kv)) == decode_kv(kv)
    assert decode_kv(kv)["metadata"]["resourceVersion"] == str(revision)


def test_values_stored_in_another_order_still_decode() -> None:
    kv = KeyValue("/k", b'{"kind":"K","metadata":{"name":"x"}}', 1, 9)
    assert orjson.loads(encode_kv(kv)) == {"kind": "K", "metadata": {"name": "x",
                                                                      "resourceVersion": "9"}}
