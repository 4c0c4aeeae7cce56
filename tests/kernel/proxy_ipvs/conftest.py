"""The proxy test node of tests/integration/proxy (apiserver, node namespace, backend and
client pods), reused for IPVS mode inside user-mode Linux."""

from tests.integration.proxy.conftest import api, apiserver, node  # noqa: F401  (fixtures)
