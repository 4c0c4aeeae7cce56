"""`netplane up` / `netplane down`: a whole cluster of network-namespace nodes on this machine.

`up` builds the networks (control/cluster/network.py), starts the apiserver (with a
second listener inside the underlay), the scheduler and the controller-manager in the
host namespace, and a kubelet inside each node's namespace; then waits for every node
to be Ready. In the foreground it tears everything down on Ctrl-C or SIGTERM; with
`--detach` a supervisor process does the same when `netplane down` signals it.
`down` also works when the supervisor is gone (crashed, killed): the record in
`<state-dir>/cluster.json` says what to remove.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from control.cluster import addons, hostports, processes
from control.cluster.layout import (
    CLUSTER_CIDR,
    CLUSTER_DNS_IP,
    CLUSTER_DOMAIN,
    UNDERLAY_API_PORT,
    UNDERLAY_GATEWAY,
    ClusterRecord,
    Layout,
    cluster_id_for,
    plan_nodes,
)
from control.cluster.network import ClusterNetwork, NodeSpec, listen_in_netns
from netplane.kernel import netns
from netplane.proxy import modes as proxy_modes

log = logging.getLogger(__name__)

PROXY_MODES = proxy_modes.ALL
_READY_FILE = "ready"
PROXY_METRICS_PORT = 10249


class ClusterError(Exception):
    """A cluster that cannot be brought up or down; the message says what to do."""


@dataclass
class UpOptions:
    state_dir: Path
    nodes: int = 2
    proxy_mode: str = "iptables"
    iptables_variant: str = "auto"  # the proxies' --iptables-variant
    api_port: int = 6443
    ready_timeout: float = 120.0
    node_monitor_grace_period: str = "40s"
    store: str = ""  # the apiserver's --store; "" is SQLite in its data dir
    ingress_port: str = "127.0.0.1:8080"  # the host's port into the ingress gateway; "0" disables
    ingress_tls_port: str = "127.0.0.1:8443"
    ingress_ports_required: bool = False  # else a taken port is skipped with a warning


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        # As the apiserver binds: connections in TIME_WAIT do not make the port busy.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def supervisor_alive(layout: Layout) -> bool:
    record = layout.read_record()
    if record is None or not record.supervisor_pid:
        return False
    try:
        argv = Path(f"/proc/{record.supervisor_pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"up" in argv and os.getpid() != record.supervisor_pid


def _network(record: ClusterRecord) -> ClusterNetwork:
    return ClusterNetwork(record.cluster_id, [NodeSpec(n.name, n.index, n.pod_cidr)
                                              for n in record.nodes])


def _api_get(url: str, ca: Path, token: str, timeout: float = 2.0) -> Any:
    ctx = ssl.create_default_context(cafile=str(ca))
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, context=ctx, timeout=timeout) as resp:
        return json.loads(resp.read())


def _api_ok(url: str, ca: Path) -> bool:
    ctx = ssl.create_default_context(cafile=str(ca))
    with urllib.request.urlopen(url, context=ctx, timeout=2.0) as resp:
        return resp.status == 200


def _wait(what: str, check: Any, timeout: float, record: ClusterRecord) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in record.processes:
            if not processes.is_running(proc):
                raise ClusterError(f"{proc.name} exited while waiting for {what}; "
                                   f"see its log under logs/{proc.name}.log")
        with contextlib.suppress(OSError, ValueError):
            if check():
                return
        time.sleep(0.2)
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}")


def _proxy_synced(node_netns: str) -> bool:
    """The node's proxy has programmed its data plane once (its metrics say when)."""
    def read() -> bool:
        url = f"http://127.0.0.1:{PROXY_METRICS_PORT}/metrics"
        with urllib.request.urlopen(url, timeout=2) as resp:
            text = resp.read().decode()
        return any(line.startswith("kubeproxy_sync_proxy_rules_last_timestamp_seconds ")
                   and float(line.split()[1]) > 0 for line in text.splitlines())

    return netns.run_in(node_netns, read)


def _api_create(url: str, ca: Path, token: str, body: dict[str, Any]) -> None:
    """POST `body`; an object that exists already (a restarted up) is left as it is."""
    ctx = ssl.create_default_context(cafile=str(ca))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10):
            pass
    except urllib.error.HTTPError as exc:
        if exc.code != 409:
            raise ClusterError(f"creating {body['kind']} {body['metadata']['name']}: "
                               f"{exc.code} {exc.read().decode(errors='replace')[:300]}") from exc


def _start_addons(layout: Layout, record: ClusterRecord, url: str, ca: Path, token: str,
                  timeout: float, options: dict[str, Any] | None = None) -> None:
    """Applies every add-on (control/cluster/addons) and waits for its Deployments."""
    ctx = addons.AddonContext(cluster_id=record.cluster_id, cluster_dns_ip=CLUSTER_DNS_IP,
                              cluster_domain=CLUSTER_DOMAIN, node_names=tuple(n.name for n in record.nodes),
                              kubeconfig=str(layout.node_kubeconfig), state_dir=str(layout.state_dir),
                              options=options or {})
    deployments: list[tuple[str, str]] = []
    for addon in addons.discover():
        for obj in addon.manifests(ctx):
            _api_create(url + addons.collection_path(obj), ca, token, obj)
            if obj["kind"] == "Deployment":
                deployments.append((obj["metadata"].get("namespace", "default"), obj["metadata"]["name"]))

    def available() -> bool:
        for namespace, name in deployments:
            d = _api_get(f"{url}/apis/apps/v1/namespaces/{namespace}/deployments/{name}", ca, token)
            if (d.get("status") or {}).get("availableReplicas", 0) < (d.get("spec") or {}).get("replicas", 1):
                return False
        return True

    if deployments:
        names = ", ".join(f"{ns}/{n}" for ns, n in deployments)
        _wait(f"the add-ons to be available ({names})", available, timeout, record)


def _node_kubeconfig(admin: dict[str, Any]) -> dict[str, Any]:
    node = json.loads(json.dumps(admin))
    for cluster in node["clusters"]:
        cluster["cluster"]["server"] = f"https://{UNDERLAY_GATEWAY}:{UNDERLAY_API_PORT}"
    return node


def bring_up(opts: UpOptions) -> ClusterRecord:
    """Builds and starts the cluster; returns once every node is Ready. On any failure
    everything made so far is removed again."""
    if opts.proxy_mode not in PROXY_MODES:
        raise ClusterError(f"--proxy-mode must be one of {', '.join(PROXY_MODES)}")
    if opts.proxy_mode not in proxy_modes.BACKENDS:
        raise ClusterError(f"--proxy-mode {opts.proxy_mode} is not built yet; use "
                           f"{' or '.join(proxy_modes.BACKENDS)}")
    if opts.proxy_mode == "ipvs":
        from netplane.proxy_ipvs.kernel import ipvs_available

        reason = ipvs_available()  # the nodes share this kernel
        if reason:
            raise ClusterError(f"--proxy-mode ipvs: {reason}; use --proxy-mode iptables on this machine")
    if os.geteuid() != 0:
        raise ClusterError("netplane up needs root (it creates network namespaces); run it with sudo")
    if shutil.which("ip") is None:
        raise ClusterError("the `ip` command is missing; install iproute2 (make deps does)")
    layout = Layout(opts.state_dir.resolve())
    if layout.read_record() is not None:
        if supervisor_alive(layout):
            raise ClusterError(f"a cluster is already running from {layout.state_dir}; "
                               f"run `netplane down --state-dir {layout.state_dir}` first")
        tear_down(layout)  # leftovers of a cluster whose supervisor died
    if not _port_is_free(opts.api_port):
        raise ClusterError(f"127.0.0.1:{opts.api_port} is in use; pick another --api-port")
    cid = cluster_id_for(layout.state_dir)
    record = ClusterRecord(cluster_id=cid, api_port=opts.api_port, proxy_mode=opts.proxy_mode,
                           nodes=plan_nodes(cid, opts.nodes),
                           supervisor_pid=os.getpid())
    layout.write_record(record)
    try:
        _start_all(layout, record, opts)
    except BaseException:
        # _start_all writes the record in batches, and a signal (run_foreground) can stop it
        # between a start and the next write: whatever it started must be on record to be stopped.
        with contextlib.suppress(OSError):
            layout.write_record(record)
        tear_down(layout, keep_logs=True)  # the logs say why; the next up or down clears them
        raise
    return record


def _start_all(layout: Layout, record: ClusterRecord, opts: UpOptions) -> None:
    forwards = hostports.reserve(opts.ingress_port, opts.ingress_tls_port,  # fails early when taken
                                 required=opts.ingress_ports_required)
    network = _network(record)
    network.create()
    listener = listen_in_netns(network.underlay_netns, UNDERLAY_GATEWAY, UNDERLAY_API_PORT)
    try:
        argv = processes.netplane_argv(
            "apiserver", "--data-dir", str(layout.apiserver_dir), "--secure-port", str(opts.api_port),
            "--tls-san", UNDERLAY_GATEWAY, "--listen-fd", str(listener.fileno()),
            "--advertise-address", f"{UNDERLAY_GATEWAY}:{UNDERLAY_API_PORT}",
            *(["--store", opts.store] if opts.store else []))
        record.processes.append(processes.start("apiserver", argv, layout.log_path("apiserver"),
                                                pass_fds=(listener.fileno(),)))
    finally:
        listener.close()  # the apiserver holds its own copy now
    layout.write_record(record)
    kubeconfig = layout.apiserver_dir / "admin.kubeconfig"
    ca = layout.apiserver_dir / "pki" / "ca.crt"
    url = f"https://127.0.0.1:{opts.api_port}"
    _wait("the apiserver", lambda: kubeconfig.exists() and _api_ok(f"{url}/readyz", ca),
          60, record)
    admin = yaml.safe_load(kubeconfig.read_text())
    token = admin["users"][0]["user"]["token"]
    shutil.copyfile(kubeconfig, layout.admin_kubeconfig)
    os.chmod(layout.admin_kubeconfig, 0o600)
    layout.node_kubeconfig.write_text(yaml.safe_dump(_node_kubeconfig(admin)))
    os.chmod(layout.node_kubeconfig, 0o600)

    host_kc = str(layout.admin_kubeconfig)
    for name, argv in (
        ("scheduler", processes.netplane_argv("scheduler", "--kubeconfig", host_kc,
                                              "--port", str(_free_port()))),
        ("controller-manager", processes.netplane_argv(
            "controller-manager", "--kubeconfig", host_kc, "--port", str(_free_port()),
            "--node-monitor-grace-period", opts.node_monitor_grace_period)),
    ):
        record.processes.append(processes.start(name, argv, layout.log_path(name)))
    for node in record.nodes:
        argv = processes.netplane_argv(
            "kubelet", "--kubeconfig", str(layout.node_kubeconfig), "--node-name", node.name,
            "--pod-cidr", node.pod_cidr, "--root-dir", str(layout.node_dir(node.name)),
            "--cluster-dns", CLUSTER_DNS_IP, "--cluster-domain", CLUSTER_DOMAIN,
            "--node-ip", node.underlay_ip, "--cluster-id", record.cluster_id,
            # Renewed often, so that a short --node-monitor-grace-period never flaps a node.
            "--lease-renew-interval", "2")
        record.processes.append(processes.start(f"kubelet-{node.name}", argv,
                                                layout.log_path(f"kubelet-{node.name}"),
                                                netns=node.netns))
        argv = processes.netplane_argv(
            "proxy", "--mode", opts.proxy_mode, "--kubeconfig", str(layout.node_kubeconfig),
            "--node-name", node.name, "--metrics-bind-address", f"127.0.0.1:{PROXY_METRICS_PORT}",
            "--cluster-cidr", CLUSTER_CIDR, "--iptables-variant", opts.iptables_variant)
        record.processes.append(processes.start(f"proxy-{node.name}", argv,
                                                layout.log_path(f"proxy-{node.name}"),
                                                netns=node.netns))
    layout.write_record(record)

    def nodes_ready() -> bool:
        items = _api_get(f"{url}/api/v1/nodes", ca, token)["items"]
        ready = {n["metadata"]["name"] for n in items
                 if any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in (n.get("status") or {}).get("conditions") or [])}
        return ready >= {n.name for n in record.nodes}

    _wait(f"{len(record.nodes)} nodes to be Ready", nodes_ready, opts.ready_timeout, record)
    _wait("every node's proxy to sync", lambda: all(_proxy_synced(n.netns) for n in record.nodes),
          opts.ready_timeout, record)
    _start_addons(layout, record, url, ca, token, opts.ready_timeout, hostports.addon_options(forwards))
    if forwards:
        record.processes.append(hostports.start(layout, record.nodes[0], forwards))
        layout.write_record(record)
    (layout.state_dir / _READY_FILE).write_text(str(time.time()))


def tear_down(layout: Layout, *, keep_logs: bool = False) -> list[str]:
    """Stops every process, removes every namespace and interface, then the state dir
    (but for `logs/` with `keep_logs`). Idempotent; returns what it did, for the user."""
    done: list[str] = []
    record = layout.read_record()
    if record is None:
        if not keep_logs and layout.log_path("up").parent.exists() and not any(
                p.name != "logs" for p in layout.state_dir.iterdir()):
            shutil.rmtree(layout.state_dir, ignore_errors=True)  # logs of a failed up
        return done
    for proc in reversed(record.processes):
        if processes.is_running(proc):
            processes.stop(proc)
            done.append(f"stopped {proc.name}")
    network = _network(record)
    killed = processes.kill_processes_in_netns(network.all_netns())
    if killed:
        done.append(f"killed {killed} pod processes")
    network.destroy()
    done.append("removed the cluster's network namespaces")
    if keep_logs:
        for entry in layout.state_dir.iterdir():
            if entry.name != "logs":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        done.append(f"removed {layout.state_dir} but for its logs")
    else:
        shutil.rmtree(layout.state_dir, ignore_errors=True)
        done.append(f"removed {layout.state_dir}")
    return done


class BringUpInterrupted(BaseException):
    """SIGINT or SIGTERM arrived while the cluster was coming up. A BaseException, as
    KeyboardInterrupt is, so that no `except Exception` on its way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def run_foreground(opts: UpOptions, *, supervisor: bool = False) -> int:
    """Brings the cluster up and keeps it until SIGINT/SIGTERM; then tears it down. A
    signal while it is still coming up stops the bring-up where it is and removes what
    was made; the exit code is then 128 + the signal (130 for Ctrl-C)."""
    stop = {"signal": 0}
    stop_signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in stop_signals}

    def handle(handler: Any) -> None:
        for sig in stop_signals:
            signal.signal(sig, handler)

    def note(signum: int, _frame: object) -> None:
        stop["signal"] = signum

    def interrupt(signum: int, frame: object) -> None:
        # Raised in the main thread wherever it is: almost always a poll's sleep or an HTTP
        # call in _wait, which is where bring-up spends its minutes. Only the first signal
        # interrupts; later ones are noted, so that they cannot cut the teardown short.
        note(signum, frame)
        handle(note)
        raise BringUpInterrupted(signum)

    layout = Layout(opts.state_dir.resolve())
    handle(interrupt)
    try:
        record = bring_up(opts)
        handle(note)
    except BringUpInterrupted as exc:
        # bring_up has removed what it made but for the logs, unless the signal came before
        # its own cleanup could start: this removes the rest, logs included (nothing failed).
        for line in tear_down(layout):
            log.info("%s", line)
        print(f"netplane up: {exc} while the cluster was coming up; removed everything it had made",
              file=sys.stderr, flush=True)
        return 128 + exc.signum
    except BaseException:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        raise
    if not supervisor:
        print(next_steps(layout, record), flush=True)
    try:
        while not stop["signal"]:
            time.sleep(0.2)
    finally:
        for line in tear_down(layout):
            log.info("%s", line)
    return 0


def detach(opts: UpOptions, argv: list[str]) -> ClusterRecord:
    """Starts a supervisor (`up --supervise`) in a session of its own and returns once the
    cluster is ready, or raises with the supervisor's last words."""
    layout = Layout(opts.state_dir.resolve())
    if supervisor_alive(layout):
        raise ClusterError(f"a cluster is already running from {layout.state_dir}; "
                           f"run `netplane down --state-dir {layout.state_dir}` first")
    tear_down(layout)  # leftovers of a cluster whose supervisor died, before logging into it
    log_path = layout.log_path("up")
    rec = processes.start("supervisor", [sys.executable, "-m", "netplane.cli.main", *argv, "--supervise"],
                          log_path)
    deadline = time.monotonic() + opts.ready_timeout + 90
    while time.monotonic() < deadline:
        if (layout.state_dir / _READY_FILE).exists():
            record = layout.read_record()
            assert record is not None
            return record
        if not processes.is_running(rec):
            raise ClusterError("the cluster did not come up:\n" + log_path.read_text()[-2000:])
        time.sleep(0.2)
    processes.stop(rec, timeout=60)
    raise ClusterError("timed out waiting for the cluster; see " + str(log_path))


def _example(name: str) -> str:
    """Where the checkout's example manifest `name` is, as the user can type it here."""
    path = Path(__file__).resolve().parents[2] / "examples" / name
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def next_steps(layout: Layout, record: ClusterRecord) -> str:
    kc = layout.admin_kubeconfig
    nodes = ", ".join(f"{n.name} ({n.pod_cidr})" for n in record.nodes)
    return "\n".join((
        f"cluster {record.cluster_id} is up: {nodes}",
        f"  export KUBECONFIG={kc}",
        "  kubectl get nodes -o wide            # or: netplane ctl get nodes",
        f"  kubectl apply -f {_example('web.yaml')}   # web servers (netplane agnhost) behind a Service",
        "  netplane ctl get pods -o wide",
        *hostports.next_steps(layout),
        f"  netplane down --state-dir {layout.state_dir}",
    ))


def bring_down(layout: Layout, timeout: float = 120.0) -> list[str]:
    """`netplane down`: asks a live supervisor to tear down (it owns the processes), waits,
    then removes whatever is left from the record."""
    record = layout.read_record()
    if record is None:
        return []
    if supervisor_alive(layout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.supervisor_pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while supervisor_alive(layout) and time.monotonic() < deadline:
            time.sleep(0.1)
    return tear_down(layout) or ["the supervisor tore the cluster down"]
