"""The network every proxy mode is measured in: fresh namespaces, torn down afterwards.

    client (10.250.1.2) --veth-- node --bridge np-br (10.250.0.1/24)-- ep-0 .. ep-N (10.250.0.10+i)

The node namespace routes between the client and the endpoints and holds the apiserver,
the proxy and its rules; each endpoint namespace runs one nginx worker that answers with
its own name (so a client can tell which endpoint served it) and serves a large sparse
file for bulk transfers. The client sits on a subnet of its own, so its traffic to the
endpoints is routed through the node both ways (no bridge short cut, no br_netfilter
subtleties) and every mode sees the same path.

Everything is set up with iproute2 (`ip`): a benchmark's set-up is not a hot path,
and the commands read the same as a network engineer would type them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

NODE_IP = "10.250.0.1"
CLIENT_IP = "10.250.1.2"
CLIENT_GATEWAY = "10.250.1.1"
CLUSTER_CIDR = "10.250.0.0/16"
ENDPOINT_PORT = 8080
BULK_BYTES = 1 << 30  # the sparse file nginx serves for bulk transfers: 1 GiB of zeros


def endpoint_ip(i: int) -> str:
    return f"10.250.0.{10 + i}"


_NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen {ip}:{port} reuseport backlog=4096;
        location = /bulk {{ root {dir}; try_files /bulk =404; }}
        location / {{ default_type text/plain; return 200 "{name}\\n"; }}
    }}
}}
"""


class LabError(Exception):
    """The lab could not be built (a missing tool, a namespace that would not come up)."""


def _ip(commands: list[str]) -> None:
    for command in commands:
        out = subprocess.run(["ip", *command.split()], text=True, capture_output=True, check=False)
        if out.returncode != 0:
            raise LabError(f"ip {command}: {out.stderr.strip()}")


def in_ns(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


@dataclass
class Lab:
    """The namespaces and endpoint servers of one measurement; `close()` removes them all."""

    endpoints: int
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="np-bench-lab-")))
    _servers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _namespaces: list[str] = field(default_factory=list)

    @property
    def node(self) -> str:
        return f"npb-{self.tag}-node"

    @property
    def client(self) -> str:
        return f"npb-{self.tag}-client"

    def endpoint_ns(self, i: int) -> str:
        return f"npb-{self.tag}-ep{i}"

    def build(self) -> Lab:
        if shutil.which("nginx") is None:
            raise LabError("nginx is not installed (Debian package nginx-light; `make bench-deps`)")
        names = [self.node, self.client, *(self.endpoint_ns(i) for i in range(self.endpoints))]
        for name in names:
            subprocess.run(["ip", "netns", "add", name], check=True)
            self._namespaces.append(name)
        t = self.tag
        cmds = [f"-n {n} link set lo up" for n in names]
        cmds += [f"-n {self.node} link add np-br type bridge",
                 f"-n {self.node} addr add {NODE_IP}/24 dev np-br",
                 f"-n {self.node} link set np-br up",
                 f"link add c{t} netns {self.node} type veth peer name eth0 netns {self.client}",
                 f"-n {self.node} addr add {CLIENT_GATEWAY}/24 dev c{t}",
                 f"-n {self.node} link set c{t} up",
                 f"-n {self.client} addr add {CLIENT_IP}/24 dev eth0",
                 f"-n {self.client} link set eth0 up",
                 f"-n {self.client} route add default via {CLIENT_GATEWAY}"]
        for i in range(self.endpoints):
            ns, host = self.endpoint_ns(i), f"e{i}{t}"
            cmds += [f"link add {host} netns {self.node} type veth peer name eth0 netns {ns}",
                     f"-n {self.node} link set {host} master np-br",
                     f"-n {self.node} link set {host} up",
                     f"-n {ns} addr add {endpoint_ip(i)}/24 dev eth0",
                     f"-n {ns} link set eth0 up",
                     f"-n {ns} route add default via {NODE_IP}"]
        _ip(cmds)
        subprocess.run(in_ns(self.node, "sysctl", "-qw", "net.ipv4.ip_forward=1"), check=True)
        for i in range(self.endpoints):
            self._start_nginx(i)
        return self

    def _start_nginx(self, i: int) -> None:
        d = self.workdir / f"ep{i}"
        d.mkdir()
        self.workdir.chmod(0o755)  # nginx's worker drops root and must reach the bulk file
        d.chmod(0o755)
        with (d / "bulk").open("wb") as f:  # sparse: costs no memory on tmpfs
            f.truncate(BULK_BYTES)
        conf = d / "nginx.conf"
        conf.write_text(_NGINX_CONF.format(dir=d, ip=endpoint_ip(i), port=ENDPOINT_PORT, name=f"ep-{i}"))
        log = (d / "stdout.log").open("ab")
        self._servers.append(subprocess.Popen(in_ns(self.endpoint_ns(i), "nginx", "-c", str(conf),
                                                    "-p", str(d), "-e", str(d / "error.log")),
                                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def close(self) -> None:
        for proc in self._servers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
        for proc in self._servers:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
        for name in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.contextmanager
def lab(endpoints: int) -> Iterator[Lab]:
    built = Lab(endpoints)
    try:
        yield built.build()
    finally:
        built.close()
