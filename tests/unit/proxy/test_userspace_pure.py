"""Userspace mode's pure parts: the round-robin balancer with ClientIP affinity, and the
portal rules as kube-proxy's userspace mode wrote them."""

from __future__ import annotations

from netplane.model.servicemap import Endpoint, ServicePortName
from netplane.proxy_userspace import portals
from netplane.proxy_userspace.balancer import Balancer

A, B, C = (Endpoint(f"10.244.1.{i}", 8080) for i in (2, 3, 4))


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_round_robin_visits_every_endpoint_in_turn() -> None:
    b = Balancer()
    b.set_endpoints([A, B, C])
    assert [b.next("c") for _ in range(6)] == [A, B, C, A, B, C]


def test_no_endpoints_means_no_choice() -> None:
    assert Balancer().next("c") is None


def test_a_change_keeps_the_rotation_going() -> None:
    b = Balancer()
    b.set_endpoints([A, B, C])
    b.next("c")
    b.set_endpoints([A, B])
    assert b.next("c") == B


def test_affinity_pins_a_client_until_the_timeout_then_rotates() -> None:
    clock = Clock()
    b = Balancer(affinity_seconds=10, now=clock)
    b.set_endpoints([A, B, C])
    first = b.next("10.0.0.1")
    other = b.next("10.0.0.2")
    assert first != other
    for step in range(5):
        clock.t = step * 9.0  # each use refreshes the pin
        assert b.next("10.0.0.1") == first
    clock.t += 10.5
    assert b.next("10.0.0.1") != first


def test_a_retry_skips_the_pinned_endpoint() -> None:
    b = Balancer(affinity_seconds=10)
    b.set_endpoints([A, B])
    first = b.next("x")
    assert b.next("x", reset=True) != first
    assert b.next("x") != first, "the retry's endpoint becomes the new pin"


def test_a_removed_endpoint_loses_its_pinned_clients() -> None:
    b = Balancer(affinity_seconds=100)
    b.set_endpoints([A, B])
    assert b.next("x") == A
    b.set_endpoints([B, C])
    assert b.next("x") in (B, C)


def test_expiry_drops_old_affinity_records() -> None:
    clock = Clock()
    b = Balancer(affinity_seconds=5, now=clock)
    b.set_endpoints([A])
    for i in range(100):
        b.next(f"10.0.0.{i}")
    clock.t = 6
    assert b.expire() == 0


def test_portals_redirect_cluster_and_external_ips_in_both_chains() -> None:
    web = ServicePortName("default", "web", "http", "TCP")
    dns = ServicePortName("kube-system", "kube-dns", "dns", "UDP")
    text = portals.render([
        portals.Portal("10.96.0.10", 53, "UDP", 40001, dns),
        portals.Portal("10.96.0.20", 80, "TCP", 40002, web),
        portals.Portal("192.0.2.7", 80, "TCP", 40003, web, "external IP"),
    ])
    assert text == (
        "*nat\n:KUBE-PORTALS-CONTAINER - [0:0]\n:KUBE-PORTALS-HOST - [0:0]\n"
        '-A KUBE-PORTALS-CONTAINER -d 10.96.0.10/32 -p udp -m comment --comment "kube-system/kube-dns:dns '
        'cluster IP" -m udp --dport 53 -j REDIRECT --to-ports 40001\n'
        '-A KUBE-PORTALS-CONTAINER -d 10.96.0.20/32 -p tcp -m comment --comment "default/web:http '
        'cluster IP" -m tcp --dport 80 -j REDIRECT --to-ports 40002\n'
        '-A KUBE-PORTALS-CONTAINER -d 192.0.2.7/32 -p tcp -m comment --comment "default/web:http '
        'external IP" -m tcp --dport 80 -j REDIRECT --to-ports 40003\n'
        '-A KUBE-PORTALS-HOST -d 10.96.0.10/32 -p udp -m comment --comment "kube-system/kube-dns:dns '
        'cluster IP" -m udp --dport 53 -j REDIRECT --to-ports 40001\n'
        '-A KUBE-PORTALS-HOST -d 10.96.0.20/32 -p tcp -m comment --comment "default/web:http '
        'cluster IP" -m tcp --dport 80 -j REDIRECT --to-ports 40002\n'
        '-A KUBE-PORTALS-HOST -d 192.0.2.7/32 -p tcp -m comment --comment "default/web:http '
        'external IP" -m tcp --dport 80 -j REDIRECT --to-ports 40003\n'
        "COMMIT\n")


def test_no_services_still_declares_and_so_flushes_both_chains() -> None:
    assert portals.render([]) == "*nat\n:KUBE-PORTALS-CONTAINER - [0:0]\n:KUBE-PORTALS-HOST - [0:0]\nCOMMIT\n"
