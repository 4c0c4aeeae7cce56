"""etcd clusters on loopback for the store tests: skipped with the reason when the etcd
binary is missing, always stopped, also when a test fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from control.store.etcd_process import EtcdCluster, etcd_binary


def require_etcd() -> None:
    if etcd_binary() is None:
        pytest.skip("etcd is not installed (Debian: apt-get install etcd-server)")


class Clusters:
    """Starts clusters on demand, one per name, and stops them all at the end."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.by_name: dict[str, EtcdCluster] = {}

    def get(self, name: str, size: int = 1) -> EtcdCluster:
        cluster = self.by_name.get(name)
        if cluster is None:
            cluster = EtcdCluster(self.base / f"etcd-{name}", size)
            self.by_name[name] = cluster
            cluster.start()
        return cluster

    def stop(self) -> None:
        for cluster in self.by_name.values():
            cluster.stop()


@pytest.fixture
def etcd_clusters(tmp_path: Path) -> Iterator[Clusters]:
    require_etcd()
    clusters = Clusters(tmp_path)
    try:
        yield clusters
    finally:
        clusters.stop()


@pytest.fixture
def etcd(etcd_clusters: Clusters) -> EtcdCluster:
    """One fresh single-member etcd."""
    return etcd_clusters.get("one")
