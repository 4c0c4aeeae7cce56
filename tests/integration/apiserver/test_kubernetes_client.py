"""The official `kubernetes` Python client, unmodified, against `netplane apiserver`."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch


def _service(name: str, port: int = 80, **spec: object) -> k8s.V1Service:
    return k8s.V1Service(
        metadata=k8s.V1ObjectMeta(name=name, labels={"app": name}),
        spec=k8s.V1ServiceSpec(selector={"app": name},
                               ports=[k8s.V1ServicePort(port=port, name="http")], **spec))


def test_namespaces_are_created_listed_and_deleted(core: k8s.CoreV1Api) -> None:
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name="client-ns")))
    names = {ns.metadata.name for ns in core.list_namespace().items}
    assert {"default", "kube-system", "client-ns"} <= names
    assert core.read_namespace("client-ns").status.phase == "Active"
    core.delete_namespace("client-ns")
    assert _wait_gone(lambda: core.read_namespace("client-ns")) == 404


def _wait_gone(read: Callable[[], object], tries: int = 100) -> int:
    """The status of the first failing read (a namespace empties asynchronously)."""
    for _ in range(tries):
        try:
            read()
        except k8s.ApiException as exc:
            return exc.status
        threading.Event().wait(0.1)
    return 200


def test_a_service_gets_a_cluster_ip_and_defaults(core: k8s.CoreV1Api, namespace: str) -> None:
    svc = core.create_namespaced_service(namespace, _service("web"))
    assert svc.spec.cluster_ip.startswith("10.")
    assert svc.spec.cluster_ips == [svc.spec.cluster_ip]
    assert svc.spec.type == "ClusterIP"
    assert svc.spec.session_affinity == "None"
    assert svc.spec.ports[0].protocol == "TCP"
    assert svc.spec.ports[0].target_port == 80
    assert svc.metadata.uid and svc.metadata.creation_timestamp
    got = core.read_namespaced_service("web", namespace)
    assert got.spec.cluster_ip == svc.spec.cluster_ip
    assert got.metadata.resource_version == svc.metadata.resource_version


def test_cluster_ips_are_distinct_and_node_ports_in_range(core: k8s.CoreV1Api, namespace: str) -> None:
    ips = set()
    for i in range(20):
        svc = core.create_namespaced_service(namespace, _service(f"s{i}"))
        ips.add(svc.spec.cluster_ip)
    assert len(ips) == 20
    np = core.create_namespaced_service(namespace, _service("np", type="NodePort"))
    assert 30000 <= np.spec.ports[0].node_port <= 32767
    headless = core.create_namespaced_service(namespace, _service("hl", cluster_ip="None"))
    assert headless.spec.cluster_ip == "None"
    ext = core.create_namespaced_service(namespace, k8s.V1Service(
        metadata=k8s.V1ObjectMeta(name="ext"),
        spec=k8s.V1ServiceSpec(type="ExternalName", external_name="example.com")))
    assert ext.spec.cluster_ip is None


def test_update_with_a_stale_resource_version_is_a_409_conflict(
        core: k8s.CoreV1Api, namespace: str) -> None:
    svc = core.create_namespaced_service(namespace, _service("web"))
    svc.metadata.labels["tier"] = "front"
    updated = core.replace_namespaced_service("web", namespace, svc)
    assert int(updated.metadata.resource_version) > int(svc.metadata.resource_version)
    svc.metadata.labels["tier"] = "back"  # still carries the old resourceVersion
    with pytest.raises(k8s.ApiException) as exc:
        core.replace_namespaced_service("web", namespace, svc)
    assert exc.value.status == 409
    assert '"reason":"Conflict"' in exc.value.body.replace(" ", "")
    assert core.read_namespaced_service("web", namespace).metadata.labels["tier"] == "front"


def test_pods_are_created_patched_bound_and_deleted(core: k8s.CoreV1Api, namespace: str) -> None:
    pod = k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="p1", labels={"app": "x"}),
                    spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="c", image="busybox")]))
    created = core.create_namespaced_pod(namespace, pod)
    assert created.status.phase == "Pending"
    assert created.spec.restart_policy == "Always"
    patched = core.patch_namespaced_pod("p1", namespace, {"metadata": {"labels": {"b": "2"}}})
    assert patched.metadata.labels == {"app": "x", "b": "2"}
    core.create_namespaced_pod_binding(
        "p1", namespace, k8s.V1Binding(metadata=k8s.V1ObjectMeta(name="p1"),
                                       target=k8s.V1ObjectReference(kind="Node", name="n1")),
        _preload_content=False)
    assert core.read_namespaced_pod("p1", namespace).spec.node_name == "n1"
    bound = core.list_namespaced_pod(namespace, field_selector="spec.nodeName=n1").items
    assert [p.metadata.name for p in bound] == ["p1"]
    core.delete_namespaced_pod("p1", namespace, grace_period_seconds=0)
    assert core.list_namespaced_pod(namespace).items == []


def test_endpointslices_round_trip(api_client: k8s.ApiClient, namespace: str) -> None:
    disc = k8s.DiscoveryV1Api(api_client)
    es = k8s.V1EndpointSlice(
        metadata=k8s.V1ObjectMeta(name="web-abc", labels={"kubernetes.io/service-name": "web"}),
        address_type="IPv4",
        endpoints=[k8s.V1Endpoint(addresses=["10.244.1.5"],
                                  conditions=k8s.V1EndpointConditions(ready=True))],
        ports=[k8s.DiscoveryV1EndpointPort(name="http", port=8080, protocol="TCP")])
    disc.create_namespaced_endpoint_slice(namespace, es)
    listed = disc.list_namespaced_endpoint_slice(
        namespace, label_selector="kubernetes.io/service-name=web")
    assert [e.endpoints[0].addresses for e in listed.items] == [["10.244.1.5"]]
    disc.delete_namespaced_endpoint_slice("web-abc", namespace)
    assert disc.list_namespaced_endpoint_slice(namespace).items == []


def test_watch_sees_added_modified_and_deleted(core: k8s.CoreV1Api, namespace: str) -> None:
    rv = core.list_namespaced_service(namespace).metadata.resource_version
    seen: list[tuple[str, str]] = []
    done = threading.Event()

    def watch() -> None:
        w = k8s_watch.Watch()
        for ev in w.stream(core.list_namespaced_service, namespace, resource_version=rv,
                           timeout_seconds=10):
            seen.append((ev["type"], ev["object"].metadata.name))
            if ev["type"] == "DELETED":
                w.stop()
        done.set()

    t = threading.Thread(target=watch)
    t.start()
    core.create_namespaced_service(namespace, _service("w1"))
    core.patch_namespaced_service("w1", namespace, {"metadata": {"labels": {"v": "2"}}})
    core.delete_namespaced_service("w1", namespace)
    assert done.wait(15)
    t.join()
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


def test_list_pages_with_limit_and_continue(core: k8s.CoreV1Api, namespace: str) -> None:
    for i in range(7):
        core.create_namespaced_config_map(namespace, k8s.V1ConfigMap(
            metadata=k8s.V1ObjectMeta(name=f"cm{i}"), data={"i": str(i)}))
    names, token, pages = [], None, 0
    while True:
        page = core.list_namespaced_config_map(namespace, limit=3, _continue=token)
        names += [c.metadata.name for c in page.items]
        pages += 1
        token = page.metadata._continue
        if not token:
            break
    assert names == [f"cm{i}" for i in range(7)]
    assert pages == 3


def test_generate_name_makes_unique_names(core: k8s.CoreV1Api, namespace: str) -> None:
    names = {core.create_namespaced_config_map(namespace, k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(generate_name="gen-"))).metadata.name for _ in range(5)}
    assert len(names) == 5
    assert all(n.startswith("gen-") and len(n) == 9 for n in names)


def test_deployments_and_replicasets_are_served(api_client: k8s.ApiClient, namespace: str) -> None:
    apps = k8s.AppsV1Api(api_client)
    tmpl = k8s.V1PodTemplateSpec(
        metadata=k8s.V1ObjectMeta(labels={"app": "d"}),
        spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="c", image="agnhost")]))
    dep = apps.create_namespaced_deployment(namespace, k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name="d"),
        spec=k8s.V1DeploymentSpec(selector=k8s.V1LabelSelector(match_labels={"app": "d"}),
                                  template=tmpl)))
    assert dep.spec.replicas == 1
    assert dep.spec.strategy.type == "RollingUpdate"
    assert dep.metadata.generation == 1
    scaled = apps.patch_namespaced_deployment("d", namespace, {"spec": {"replicas": 3}})
    assert scaled.metadata.generation == 2
    status = apps.patch_namespaced_deployment_status("d", namespace,
                                                     {"status": {"replicas": 3}})
    assert status.status.replicas == 3
    assert status.metadata.generation == 2
