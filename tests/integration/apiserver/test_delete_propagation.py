"""DeleteOptions on DELETE, through the official client and kubectl: propagationPolicy
(body or query) and the legacy orphanDependents set the garbage collector's finalizers,
and a bad request is refused with Kubernetes' Status, leaving the object as it was. No
garbage collector runs here: what the apiserver leaves for it stays visible."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from control.apiserver.process import ApiServerProcess
from netplane.client.rest import ApiClient, ApiError, resource_path

HOLD = "example.com/hold"


@pytest.fixture
def apps(api_client: k8s.ApiClient) -> k8s.AppsV1Api:
    return k8s.AppsV1Api(api_client)


def deployment(name: str, finalizers: list[str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if finalizers:
        meta["finalizers"] = finalizers
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": "agnhost"}]}}}}


@pytest.fixture
def web(apps: k8s.AppsV1Api, namespace: str) -> Iterator[str]:
    """A Deployment named web; whatever a test left on it is cleared at the end, so that
    the namespace can go."""
    apps.create_namespaced_deployment(namespace, deployment("web"))
    yield "web"
    try:
        apps.patch_namespaced_deployment("web", namespace, {"metadata": {"finalizers": None}})
        apps.delete_namespaced_deployment("web", namespace, propagation_policy="Background")
    except k8s.ApiException as exc:
        if exc.status != 404:
            raise


def raw_get(apps: k8s.AppsV1Api, namespace: str, name: str) -> dict[str, Any]:
    resp = apps.read_namespaced_deployment(name, namespace, _preload_content=False)
    return json.loads(resp.data)


def refused(call: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(k8s.ApiException) as caught:
        call()
    return caught.value.status, json.loads(caught.value.body)


@pytest.mark.parametrize("how", ["query", "body"])
def test_an_unknown_propagation_policy_is_refused_as_invalid_and_changes_nothing(
        apps: k8s.AppsV1Api, namespace: str, web: str, how: str) -> None:
    before = raw_get(apps, namespace, web)
    options: dict[str, Any] = {"propagation_policy": "Sometimes"} if how == "query" else {
        "body": k8s.V1DeleteOptions(propagation_policy="Sometimes")}
    code, status = refused(lambda: apps.delete_namespaced_deployment(web, namespace, **options))
    assert code == 422
    assert (status["kind"], status["status"], status["reason"], status["code"]) == (
        "Status", "Failure", "Invalid", 422)
    assert status["message"] == (
        'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: '
        '"Sometimes": supported values: "Foreground", "Background", "Orphan", "nil"')
    assert status["details"]["kind"] == "DeleteOptions"
    assert status["details"]["causes"] == [{
        "reason": "FieldValueNotSupported", "field": "propagationPolicy",
        "message": 'Unsupported value: "Sometimes": supported values: "Foreground", '
                   '"Background", "Orphan", "nil"'}]
    assert raw_get(apps, namespace, web) == before


def test_the_legacy_flag_and_a_policy_together_are_refused(
        apps: k8s.AppsV1Api, namespace: str, web: str) -> None:
    before = raw_get(apps, namespace, web)
    body = k8s.V1DeleteOptions(orphan_dependents=True, propagation_policy="Orphan")
    code, status = refused(lambda: apps.delete_namespaced_deployment(web, namespace, body=body))
    assert (code, status["reason"]) == (422, "Invalid")
    assert "orphanDependents and deletionPropagation cannot be both set" in status["message"]
    assert raw_get(apps, namespace, web) == before


async def test_an_orphan_dependents_value_that_is_not_a_boolean_is_a_bad_request(
        apiserver: ApiServerProcess, apps: k8s.AppsV1Api, namespace: str, web: str) -> None:
    # The official client checks the type itself; netplane's sends the query as given.
    async with ApiClient.from_kubeconfig(apiserver.kubeconfig) as api:
        with pytest.raises(ApiError) as caught:
            await api.delete(resource_path("apps/v1", "deployments", namespace, web),
                             {"orphanDependents": "perhaps"})
    assert (caught.value.code, caught.value.reason) == (400, "BadRequest")
    assert "orphanDependents" in str(caught.value)
    assert not raw_get(apps, namespace, web)["metadata"].get("deletionTimestamp")


@pytest.mark.parametrize("options", [{"propagation_policy": "Orphan"}, {"orphan_dependents": True}])
def test_orphan_leaves_the_owner_with_the_orphan_finalizer_for_the_garbage_collector(
        apps: k8s.AppsV1Api, namespace: str, web: str, options: dict[str, Any]) -> None:
    apps.delete_namespaced_deployment(web, namespace, **options)
    meta = raw_get(apps, namespace, web)["metadata"]
    assert meta["finalizers"] == ["orphan"] and meta["deletionTimestamp"]
    # Asked again without orphaning: the finalizer goes, and with it the Deployment.
    apps.delete_namespaced_deployment(web, namespace, propagation_policy="Background")
    code, _status = refused(lambda: apps.read_namespaced_deployment(web, namespace))
    assert code == 404


def test_foreground_adds_its_finalizer_beside_the_objects_own(
        apps: k8s.AppsV1Api, namespace: str) -> None:
    apps.create_namespaced_deployment(namespace, deployment("held", [HOLD]))
    try:
        apps.delete_namespaced_deployment("held", namespace, propagation_policy="Foreground")
        meta = raw_get(apps, namespace, "held")["metadata"]
        assert meta["finalizers"] == [HOLD, "foregroundDeletion"] and meta["deletionTimestamp"]
        # orphanDependents=false is Background: foregroundDeletion goes, the object's own
        # finalizer keeps it, and Kubernetes answers such a request 202 Accepted.
        resp = apps.delete_namespaced_deployment("held", namespace, orphan_dependents=False,
                                                 _preload_content=False)
        assert resp.status == 202
        assert raw_get(apps, namespace, "held")["metadata"]["finalizers"] == [HOLD]
    finally:
        apps.patch_namespaced_deployment("held", namespace, {"metadata": {"finalizers": None}})
    code, _status = refused(lambda: apps.read_namespaced_deployment("held", namespace))
    assert code == 404


def test_a_dry_run_orphan_deletion_changes_nothing(apps: k8s.AppsV1Api, namespace: str, web: str) -> None:
    before = raw_get(apps, namespace, web)
    answer = apps.delete_namespaced_deployment(web, namespace, propagation_policy="Orphan",
                                               dry_run="All", _preload_content=False)
    assert json.loads(answer.data)["metadata"]["finalizers"] == ["orphan"]
    assert raw_get(apps, namespace, web) == before


def test_kinds_the_garbage_collector_does_not_watch_are_deleted_at_once(
        core: k8s.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cfg"}, "data": {"a": "b"}})
    core.delete_namespaced_config_map("cfg", namespace, propagation_policy="Orphan")
    code, _status = refused(lambda: core.read_namespaced_config_map("cfg", namespace))
    assert code == 404


def test_kubectl_cascade_flags_send_the_matching_policy(
        kubectl_bin: str, apiserver: ApiServerProcess, apps: k8s.AppsV1Api, namespace: str) -> None:
    base = [kubectl_bin, "--kubeconfig", str(apiserver.kubeconfig), "-n", namespace]
    for cascade, finalizer in (("orphan", "orphan"), ("foreground", "foregroundDeletion")):
        name = f"by-{cascade}"
        apps.create_namespaced_deployment(namespace, deployment(name))
        # No garbage collector here: kubectl must not wait for what only it would finish.
        proc = subprocess.run([*base, "delete", "deployment", name, f"--cascade={cascade}",
                               "--wait=false"], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        assert raw_get(apps, namespace, name)["metadata"]["finalizers"] == [finalizer]
        apps.delete_namespaced_deployment(name, namespace, propagation_policy="Background")
    apps.create_namespaced_deployment(namespace, deployment("by-background"))
    proc = subprocess.run([*base, "delete", "deployment", "by-background", "--cascade=background"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    code, _status = refused(lambda: apps.read_namespaced_deployment("by-background", namespace))
    assert code == 404
