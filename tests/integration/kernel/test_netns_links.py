"""The kernel wrappers against the real kernel, in namespaces made per test: namespaces,
veth pairs on a bridge, addresses, routes, sysctls, commands and sockets inside a namespace.
The host's links, addresses and routes are the same after every test."""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from netplane.kernel import addresses, links, netns, routes, sysctl
from netplane.kernel.exec import in_netns, in_pod

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="creates network namespaces: needs root"),
              pytest.mark.root]

_SIOCGSKNS = 0x894C  # ioctl: an fd of the network namespace a socket belongs to


def _host_network() -> list[str]:
    return [subprocess.run(["ip", "-o", *cmd], capture_output=True, text=True, check=True).stdout
            for cmd in (["link", "show"], ["addr", "show"], ["route", "show", "table", "all"])]


@pytest.fixture(autouse=True)
def host_untouched() -> Iterator[None]:
    before = _host_network()
    yield
    assert _host_network() == before, "the host namespace's links, addresses or routes changed"


@pytest.fixture
def prefix() -> Iterator[str]:
    """A name prefix of this test's own; whatever carries it is removed afterwards."""
    p = f"npt{uuid.uuid4().hex[:8]}-"
    try:
        yield p
    finally:
        for name in netns.names(p):
            netns.delete(name)
        assert netns.names(p) == []


@pytest.fixture
def make_ns(prefix: str) -> Callable[[str], str]:
    def make(suffix: str) -> str:
        name = prefix + suffix
        assert netns.create(name)
        return name

    return make


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def _wired_pair(make_ns: Callable[[str], str]) -> tuple[str, str]:
    """Namespace a with bridge br0 10.77.0.1/24 and port va; namespace b with eth0
    10.77.0.2/24 at the other end of va."""
    a, b = make_ns("a"), make_ns("b")
    with netns.ipr(a) as h:
        links.up(h, "lo")
        links.bridge(h, "br0")
        addresses.ensure(h, "br0", "10.77.0.1", 24)
        links.veth(h, "va", "eth0", peer_netns=b)
        links.attach(h, "va", "br0")
        links.up(h, "va")
    with netns.ipr(b) as h:
        links.up(h, "lo")
        addresses.ensure(h, "eth0", "10.77.0.2", 24)
        links.up(h, "eth0")
    return a, b


def test_a_namespace_is_created_once_holds_only_lo_and_is_gone_after_delete(prefix: str) -> None:
    name = prefix + "x"
    assert netns.create(name) is True
    assert netns.create(name) is False
    assert netns.exists(name) and netns.names(prefix) == [name]
    with netns.ipr(name) as h:
        assert links.names(h) == ["lo"] and not links.is_up(h, "lo")
    assert netns.delete(name) is True
    assert netns.delete(name) is False
    assert not netns.exists(name) and netns.names(prefix) == []


def test_an_empty_mount_point_left_by_a_crash_is_not_a_namespace_and_is_replaced(prefix: str) -> None:
    name = prefix + "stale"
    Path(netns.path(name)).touch()
    assert not netns.exists(name)
    assert netns.names(prefix) == [name]  # so that a cleanup finds it
    assert netns.create(name) is True and netns.exists(name)


def test_opening_a_missing_namespace_fails_instead_of_creating_it(prefix: str) -> None:
    with pytest.raises(FileNotFoundError), netns.ipr(prefix + "missing"):
        pass
    assert netns.names(prefix) == []


def test_run_in_calls_a_function_inside_the_namespace_and_leaves_the_caller_where_it_was(
        make_ns: Callable[[str], str]) -> None:
    name = make_ns("x")
    own = os.readlink("/proc/thread-self/ns/net")
    inside = netns.run_in(name, os.readlink, "/proc/thread-self/ns/net")
    assert inside == f"net:[{os.stat(netns.path(name)).st_ino}]" != own
    assert os.readlink("/proc/thread-self/ns/net") == own
    with pytest.raises(ZeroDivisionError):
        netns.run_in(name, lambda: 1 // 0)


def test_a_veth_pair_on_a_bridge_joins_two_namespaces(make_ns: Callable[[str], str]) -> None:
    a, b = _wired_pair(make_ns)
    with netns.ipr(a) as h:
        assert links.master(h, "va") == "br0" and links.is_up(h, "va")
        assert not links.exists(h, "eth0")
        assert links.hairpin(h, "va") is False
        links.set_hairpin(h, "va")
        assert links.hairpin(h, "va") is True
    listener = netns.listen_tcp(a, "10.77.0.1", 7000)
    try:
        code = "import socket; c = socket.create_connection(('10.77.0.1', 7000), timeout=5); print('ok')"
        client = _run(in_netns(b, [sys.executable, "-c", code]))
        assert client.stdout.strip() == "ok", client.stderr
        conn, (peer, _) = listener.accept()
        conn.close()
        assert peer == "10.77.0.2"
    finally:
        listener.close()


@pytest.mark.skipif(shutil.which("ping") is None, reason="needs ping (apt-get install iputils-ping)")
def test_ping_crosses_the_bridge(make_ns: Callable[[str], str]) -> None:
    _a, b = _wired_pair(make_ns)
    out = _run(in_netns(b, ["ping", "-c", "1", "-W", "5", "10.77.0.1"]))
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_bridge_keeps_its_mac_when_ports_come_and_go(make_ns: Callable[[str], str]) -> None:
    a = make_ns("a")
    with netns.ipr(a) as h:
        assert links.bridge(h, "br0") is True
        assert links.bridge(h, "br0") is False
        (br,) = h.get_links(links.index(h, "br0"))
        for i in range(3):
            links.veth(h, f"p{i}", f"q{i}")
            links.attach(h, f"p{i}", "br0")
        (after,) = h.get_links(links.index(h, "br0"))
        assert after.get("address") == br.get("address")


def test_links_are_moved_renamed_resized_and_deleted_with_their_peer(make_ns: Callable[[str], str]) -> None:
    a, b = make_ns("a"), make_ns("b")
    with netns.ipr(a) as h:
        links.veth(h, "v0", "v1")
        links.move(h, "v1", b)
        assert links.names(h) == ["lo", "v0"]
    with netns.ipr(b) as h:
        links.rename(h, "v1", "eth7")
        links.set_mtu(h, "eth7", 1400)
        links.up(h, "eth7")
        assert links.mtu(h, "eth7") == 1400 and links.is_up(h, "eth7")
        links.down(h, "eth7")
        assert not links.is_up(h, "eth7")
        with pytest.raises(ValueError, match="interface name"):
            links.rename(h, "eth7", "a-name-that-is-too-long")
    with netns.ipr(a) as h:
        assert links.delete(h, "v0") is True
        assert links.delete(h, "v0") is False
        with pytest.raises(LookupError, match="v0"):
            links.up(h, "v0")
    with netns.ipr(b) as h:
        assert links.names(h) == ["lo"]


def test_addresses_are_added_once_replaced_and_removed(make_ns: Callable[[str], str]) -> None:
    a = make_ns("a")
    with netns.ipr(a) as h:
        links.veth(h, "v0", "v1")
        assert addresses.ensure(h, "v0", "10.1.0.5", 24) is True
        assert addresses.ensure(h, "v0", "10.1.0.5", 24) is False
        addresses.ensure(h, "v0", "10.2.0.5", 16)
        assert addresses.list_ipv4(h, "v0") == ["10.1.0.5/24", "10.2.0.5/16"]
        addresses.replace(h, "v0", "10.3.0.5", 24)
        assert addresses.list_ipv4(h, "v0") == ["10.3.0.5/24"]
        assert addresses.delete(h, "v0", "10.3.0.5", 24) is True
        assert addresses.delete(h, "v0", "10.3.0.5", 24) is False
        assert addresses.list_ipv4(h, "v0") == []


def test_routes_are_replaced_looked_up_and_deleted(make_ns: Callable[[str], str]) -> None:
    _a, b = _wired_pair(make_ns)
    with netns.ipr(b) as h:
        assert routes.gateway(h, "default") is None
        routes.replace(h, "default", "10.77.0.1")
        routes.replace(h, "10.244.0.0/16", "10.77.0.1")
        routes.replace(h, "10.244.0.0/16", "10.77.0.9")  # replaces, never a second route
        assert routes.gateway(h, "default") == "10.77.0.1"
        assert routes.gateway(h, "10.244.0.0/16") == "10.77.0.9"
        dsts = [r.dst for r in routes.list_ipv4(h)]
        assert sorted(dsts) == ["0.0.0.0/0", "10.244.0.0/16", "10.77.0.0/24"]
        assert routes.delete(h, "10.244.0.0/16") is True
        assert routes.delete(h, "10.244.0.0/16") is False
        with pytest.raises(ValueError, match="host bits"):
            routes.replace(h, "10.244.1.5/16", "10.77.0.1")


def test_a_sysctl_written_in_a_namespace_stays_there(make_ns: Callable[[str], str]) -> None:
    a, b = make_ns("a"), make_ns("b")
    host = sysctl.read(None, "net.ipv4.ip_forward")
    sysctl.write(a, "net.ipv4.ip_forward", "1")
    assert sysctl.read(a, "net.ipv4.ip_forward") == "1"
    assert sysctl.read(b, "net.ipv4.ip_forward") == "0"
    assert sysctl.read(None, "net.ipv4.ip_forward") == host
    with pytest.raises(ValueError, match="sysctl key"):
        sysctl.write(a, "net/../../kernel/hostname", "x")


def test_a_listening_socket_belongs_to_its_namespace(make_ns: Callable[[str], str]) -> None:
    a = make_ns("a")
    with netns.ipr(a) as h:
        links.up(h, "lo")
    sock = netns.listen_tcp(a, "127.0.0.1", 0)
    try:
        fd = fcntl.ioctl(sock.fileno(), _SIOCGSKNS)
        try:
            assert os.fstat(fd).st_ino == os.stat(netns.path(a)).st_ino
        finally:
            os.close(fd)
        port = sock.getsockname()[1]
        conn = netns.run_in(a, socket.create_connection, ("127.0.0.1", port), 5)
        conn.close()
    finally:
        sock.close()


def test_a_command_in_a_namespace_sees_only_its_links(make_ns: Callable[[str], str]) -> None:
    a = make_ns("a")
    out = _run(in_netns(a, ["ip", "-o", "link", "show"]))
    assert out.returncode == 0, out.stderr
    assert [line.split(":")[1].strip() for line in out.stdout.splitlines()] == ["lo"]


def test_a_pod_command_sees_its_own_resolv_conf_hosts_and_hostname(
        make_ns: Callable[[str], str], tmp_path: Path) -> None:
    a = make_ns("pod")
    (tmp_path / "resolv.conf").write_text("nameserver 10.96.0.10\n")
    (tmp_path / "hosts").write_text("10.244.1.2 web-0\n")
    host_files = (Path("/etc/resolv.conf").read_bytes(), Path("/etc/hosts").read_bytes())
    argv = in_pod(a, ["sh", "-c", "cat /etc/resolv.conf /etc/hosts /proc/sys/kernel/hostname"],
                  {str(tmp_path / "resolv.conf"): "/etc/resolv.conf", str(tmp_path / "hosts"): "/etc/hosts"},
                  hostname="web-0")
    out = _run(argv)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "nameserver 10.96.0.10\n10.244.1.2 web-0\nweb-0\n"
    assert (Path("/etc/resolv.conf").read_bytes(), Path("/etc/hosts").read_bytes()) == host_files
    assert in_pod(a, ["true"]) == in_netns(a, ["true"])
