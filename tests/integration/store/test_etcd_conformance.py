"""The etcd store passes the store conformance suite, unchanged: every store name is an
etcd of its own (a fresh etcd is at revision 0, as an empty store must be), started on
loopback with its data in the test's temporary directory."""

from __future__ import annotations

import pytest

from control.store import Store, open_store
from tests.integration.store.etcd_fixtures import Clusters, etcd_clusters  # noqa: F401
from tests.store_conformance import *  # noqa: F403
from tests.store_conformance import StoreFactory


@pytest.fixture
def store_factory(etcd_clusters: Clusters) -> StoreFactory:  # noqa: F811
    async def open_named(name: str) -> Store:
        # No background compaction: the suite compacts explicitly.
        return await open_store(etcd_clusters.get(name).url(compact_interval=0))

    return open_named
