"""The cluster DNS add-on's objects: valid by the apiserver's own rules, at the cluster DNS
address, with CoreDNS's names and ports, running `netplane dns` on the node kubeconfig."""

from __future__ import annotations

from control.cluster import addons
from control.cluster.addons import dns as dns_addon
from netplane.cli.main import build_parser
from netplane.model import apply_defaults, validate

CTX = addons.AddonContext(cluster_id="abc123", cluster_dns_ip="10.96.0.10", cluster_domain="cluster.local",
                          node_names=("node-1", "node-2"), kubeconfig="/state/node.kubeconfig")


def test_the_addon_is_discovered_and_its_objects_are_valid() -> None:
    assert dns_addon in addons.discover()
    objects = dns_addon.manifests(CTX)
    assert [o["kind"] for o in objects] == ["Service", "Deployment"]
    for obj in objects:
        apply_defaults(obj)
        assert validate(obj) == [], obj["kind"]
        assert addons.collection_path(obj).startswith(("/api/v1/namespaces/kube-system/",
                                                       "/apis/apps/v1/namespaces/kube-system/"))


def test_the_service_is_kube_dns_at_the_cluster_dns_address() -> None:
    svc = dns_addon.manifests(CTX)[0]
    assert svc["metadata"] == {**svc["metadata"], "name": "kube-dns", "namespace": "kube-system"}
    assert svc["spec"]["clusterIP"] == "10.96.0.10"
    assert [(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]] == [
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")]
    assert svc["spec"]["selector"] == {"k8s-app": "kube-dns"}


def test_the_deployment_runs_netplane_dns_with_the_nodes_resolver_and_a_readiness_probe() -> None:
    dep = dns_addon.manifests(CTX)[1]
    pod = dep["spec"]["template"]["spec"]
    assert pod["dnsPolicy"] == "Default"
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    command = container["command"]
    assert command[:3] == [CTX.python, "-m", "netplane.cli.main"]
    args = build_parser().parse_args(command[3:])
    assert (args.command, str(args.kubeconfig), args.zone, args.autopath) == (
        "dns", "/state/node.kubeconfig", "cluster.local", True)
    assert dep["spec"]["selector"]["matchLabels"] == dep["spec"]["template"]["metadata"]["labels"]
