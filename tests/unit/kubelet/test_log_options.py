"""Log options the kubelet cannot honour are refused with a reason, not silently ignored:
its log files hold the containers' raw output, without the time of each line."""

from __future__ import annotations

import pytest

from control.kubelet.server import unsupported_log_options


@pytest.mark.parametrize("query", [
    {}, {"follow": "true", "tailLines": "3", "limitBytes": "10", "previous": "false"},
    {"timestamps": "false"}, {"sinceSeconds": ""},
])
def test_what_the_log_file_can_answer_is_accepted(query: dict[str, str]) -> None:
    assert unsupported_log_options(query) is None


@pytest.mark.parametrize(("query", "named"), [
    ({"timestamps": "true"}, "timestamps"),
    ({"timestamps": "1", "follow": "true"}, "timestamps"),
    ({"sinceSeconds": "60"}, "sinceSeconds"),
    ({"sinceTime": "2024-01-01T00:00:00Z"}, "sinceTime"),
    ({"timestamps": "true", "sinceSeconds": "5"}, "timestamps, sinceSeconds"),
])
def test_timestamps_and_since_are_refused_naming_what_was_asked(query: dict[str, str], named: str) -> None:
    reason = unsupported_log_options(query)
    assert reason is not None and reason.startswith(f"{named} not supported: ")
    assert "tailLines" in reason  # what to use instead
