"""What a pod sees: resolv.conf, /etc/hosts and service variables, as Kubernetes writes them."""

from __future__ import annotations

from typing import Any

from control.kubelet.dnsconfig import HostResolv, hosts_file, resolv_conf
from control.kubelet.envvars import container_env, service_env, services_for
from control.kubelet.status import ContainerRecord, pod_status

HOST = HostResolv(["10.0.0.2"], ["corp.example"], ["edns0"])


def _pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web-0", "namespace": "shop", "uid": "u1"}, "spec": spec}


def _svc(name: str, ns: str, ip: str, *ports: tuple[str, int, str]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip,
                     "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports]}}


def test_cluster_first_resolv_conf() -> None:
    text = resolv_conf(_pod(), cluster_dns=["10.96.0.10"], cluster_domain="cluster.local", host=HOST)
    assert text == ("search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
                    "nameserver 10.96.0.10\noptions ndots:5\n")


def test_default_policy_uses_the_nodes_resolver_and_dns_config_merges() -> None:
    pod = _pod(dnsPolicy="Default", dnsConfig={"nameservers": ["1.1.1.1"],
                                               "options": [{"name": "ndots", "value": "2"}]})
    text = resolv_conf(pod, cluster_dns=["10.96.0.10"], cluster_domain="cluster.local", host=HOST)
    assert text == "search corp.example\nnameserver 10.0.0.2\nnameserver 1.1.1.1\noptions edns0 ndots:2\n"


def test_hosts_file_names_the_pod_and_its_subdomain() -> None:
    plain = hosts_file(_pod(), "10.244.1.5", cluster_domain="cluster.local")
    assert plain.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    assert plain.endswith("10.244.1.5\tweb-0\n")
    sub = hosts_file(_pod(hostname="db", subdomain="dbs"), "10.244.1.5", cluster_domain="cluster.local")
    assert sub.endswith("10.244.1.5\tdb.dbs.shop.svc.cluster.local\tdb\n")


def test_service_variables_are_the_docker_links_ones() -> None:
    redis = _svc("redis-primary", "shop", "10.96.0.11", ("", 6379, "TCP"), ("metrics", 9121, "TCP"))
    env = service_env([redis])
    assert env == {
        "REDIS_PRIMARY_SERVICE_HOST": "10.96.0.11", "REDIS_PRIMARY_SERVICE_PORT": "6379",
        "REDIS_PRIMARY_SERVICE_PORT_METRICS": "9121",
        "REDIS_PRIMARY_PORT": "tcp://10.96.0.11:6379",
        "REDIS_PRIMARY_PORT_6379_TCP": "tcp://10.96.0.11:6379", "REDIS_PRIMARY_PORT_6379_TCP_PROTO": "tcp",
        "REDIS_PRIMARY_PORT_6379_TCP_PORT": "6379", "REDIS_PRIMARY_PORT_6379_TCP_ADDR": "10.96.0.11",
        "REDIS_PRIMARY_PORT_9121_TCP": "tcp://10.96.0.11:9121", "REDIS_PRIMARY_PORT_9121_TCP_PROTO": "tcp",
        "REDIS_PRIMARY_PORT_9121_TCP_PORT": "9121", "REDIS_PRIMARY_PORT_9121_TCP_ADDR": "10.96.0.11",
    }


def test_headless_services_and_other_namespaces_get_no_variables() -> None:
    services = [_svc("kubernetes", "default", "10.96.0.1", ("https", 443, "TCP")),
                _svc("other", "default", "10.96.0.7", ("", 80, "TCP")),
                _svc("headless", "shop", "None", ("", 80, "TCP")),
                _svc("web", "shop", "10.96.0.9", ("", 80, "UDP"))]
    names = {s["metadata"]["name"] for s in services_for(_pod(), services)}
    assert names == {"kubernetes", "headless", "web"}
    def ref(path: str) -> dict[str, Any]:
        return {"fieldRef": {"fieldPath": path}}

    container = {"env": [{"name": "URL", "value": "http://$(WEB_SERVICE_HOST)"},
                         {"name": "ME", "valueFrom": ref("metadata.name")},
                         {"name": "IP", "valueFrom": ref("status.podIP")}]}
    env = container_env(_pod(), container, services, pod_ip="10.244.1.5", host_ip="10.255.0.11")
    assert "HEADLESS_SERVICE_HOST" not in env and "OTHER_SERVICE_HOST" not in env
    assert env["WEB_PORT_80_UDP_PROTO"] == "udp" and env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert (env["URL"], env["ME"], env["IP"]) == ("http://10.96.0.9", "web-0", "10.244.1.5")
    assert "WEB_SERVICE_HOST" not in container_env(_pod(enableServiceLinks=False), {}, services,
                                                   pod_ip="", host_ip="")


def test_status_phase_and_readiness() -> None:
    running = ContainerRecord("c", "img", state="running", started_at="t", ready=False, pid=42)
    status = pod_status(_pod(), [running], pod_ip="10.244.1.5", host_ip="10.255.0.11", start_time="t0")
    conds = {c["type"]: c["status"] for c in status["conditions"]}
    assert status["phase"] == "Running" and conds["Ready"] == "False" and conds["PodScheduled"] == "True"
    running.ready = True
    status = pod_status(_pod(), [running], pod_ip="10.244.1.5", host_ip="10.255.0.11", start_time="t0")
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
    assert status["podIPs"] == [{"ip": "10.244.1.5"}]
    done = ContainerRecord("c", "img", state="terminated", exit_code=0)
    assert pod_status(_pod(restartPolicy="Never"), [done], pod_ip="", host_ip="",
                      start_time="t0")["phase"] == "Succeeded"
