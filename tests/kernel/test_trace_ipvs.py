"""`netplane trace` in IPVS mode: tests/e2e/test_trace.py's tests on a `netplane up
--proxy-mode ipvs` cluster inside user-mode Linux (this machine's kernel has no IPVS).
The guest kernel has no nf_tables NAT, so the proxies write legacy iptables."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from control.cluster.layout import Layout
from tests.e2e.conftest import running_cluster
from tests.e2e.test_trace import (  # noqa: F401  (collected here, with this module's cluster)
    setup,
    test_a_node_port_reached_from_a_pod_on_the_other_node,
    test_a_node_without_a_proxy_listening_is_named,
    test_a_service_without_endpoints_shows_the_rejection_and_why,
    test_a_udp_probe_names_the_endpoint_that_answered_it,
    test_a_udp_probe_to_a_service_without_endpoints_is_stopped,
    test_a_working_service_shows_its_path_and_the_endpoint_the_kernel_or_proxy_chose,
    test_bad_input_gets_one_line_and_a_failing_exit,
)

pytestmark = [pytest.mark.uml, pytest.mark.root, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Layout]:
    with running_cluster(tmp_path_factory.mktemp("trace-ipvs") / "state", "--proxy-mode", "ipvs",
                         "--iptables-variant", "legacy") as layout:
        yield layout
