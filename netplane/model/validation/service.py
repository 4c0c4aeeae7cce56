"""core/v1 Service validation (Kubernetes' ValidateService / ValidateServiceUpdate)."""

from __future__ import annotations

from typing import Any

from netplane.model.fielderrors import (
    FieldError,
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
)
from netplane.model.names import (
    inclusive_range_error,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_ip,
    is_valid_port_name,
    is_valid_port_num,
    parse_ip,
    special_ip_errors,
)
from netplane.model.validation.meta import (
    Obj,
    as_dict,
    as_int,
    as_list,
    labels,
    object_meta,
    object_meta_update,
)

PROTOCOLS = ["SCTP", "TCP", "UDP"]
SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
SESSION_AFFINITIES = ["ClientIP", "None"]
TRAFFIC_POLICIES = ["Cluster", "Local"]
IP_FAMILIES = ["IPv4", "IPv6"]
IP_FAMILY_POLICIES = ["PreferDualStack", "RequireDualStack", "SingleStack"]
MAX_CLIENT_IP_AFFINITY_SECONDS = 86400
KUBELET_PORT = 10250


def port_num_or_name(value: Any, path: str) -> list[FieldError]:
    """Kubernetes' ValidatePortNumOrName for an IntOrString port."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return [invalid(path, value, "must be an integer or a port name")]
    if isinstance(value, int):
        return [invalid(path, value, msg) for msg in is_valid_port_num(value)]
    return [invalid(path, value, msg) for msg in is_valid_port_name(value)]


def protocol(value: Any, path: str) -> list[FieldError]:
    if not value:
        return [required(path)]
    if value not in PROTOCOLS:
        return [not_supported(path, value, PROTOCOLS)]
    return []


def cluster_ips(spec: Obj) -> list[str]:
    """spec.clusterIPs as Kubernetes sees it after PrepareForCreate, which copies a lone
    clusterIP into clusterIPs."""
    ips = [str(ip) for ip in as_list(spec.get("clusterIPs"))]
    if not ips and spec.get("clusterIP"):
        ips = [str(spec["clusterIP"])]
    return ips


def is_headless(spec: Obj) -> bool:
    return cluster_ips(spec) == ["None"]


def externally_accessible(spec: Obj) -> bool:
    kind = spec.get("type")
    return kind in ("LoadBalancer", "NodePort") or (
        kind == "ClusterIP" and bool(as_list(spec.get("externalIPs"))))


def _port(port: Obj, require_name: bool, names: set[str], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    name = port.get("name") or ""
    if require_name and not name:
        errs.append(required(f"{path}.name"))
    elif name:
        errs.extend(invalid(f"{path}.name", name, msg) for msg in is_dns1123_label(name))
        if name in names:
            errs.append(duplicate(f"{path}.name", name))
        names.add(name)
    number = as_int(port.get("port"))
    if number is None:
        errs.append(invalid(f"{path}.port", port.get("port"), inclusive_range_error(1, 65535)))
    else:
        errs.extend(invalid(f"{path}.port", number, msg) for msg in is_valid_port_num(number))
    errs.extend(protocol(port.get("protocol"), f"{path}.protocol"))
    errs.extend(port_num_or_name(port.get("targetPort"), f"{path}.targetPort"))
    node_port = port.get("nodePort")
    if node_port is not None and not (as_int(node_port) is not None and 0 <= node_port <= 65535):
        errs.append(invalid(f"{path}.nodePort", node_port, inclusive_range_error(0, 65535)))
    app_protocol = port.get("appProtocol")
    if app_protocol is not None:
        errs.extend(invalid(f"{path}.appProtocol", app_protocol, msg)
                    for msg in is_qualified_name(str(app_protocol)))
    return errs


def _version(ip: str) -> int:
    parsed = parse_ip(ip)
    return parsed.version if parsed is not None else 0


def _cluster_ips_related(spec: Obj) -> list[FieldError]:
    """Kubernetes' ValidateServiceClusterIPsRelatedFields."""
    errs: list[FieldError] = []
    ips = cluster_ips(spec)
    cluster_ip = spec.get("clusterIP") or ""
    if cluster_ip and ips[0] != cluster_ip:
        errs.append(invalid("spec.clusterIPs", ips, "first value must match `clusterIP`"))
    elif not cluster_ip and ips:
        errs.append(invalid("spec.clusterIPs", ips,
                            "must be empty when `clusterIP` is not specified"))
    families = as_list(spec.get("ipFamilies"))
    seen: set[str] = set()
    for i, family in enumerate(families):
        if family not in IP_FAMILIES:
            errs.append(not_supported(f"spec.ipFamilies[{i}]", family, IP_FAMILIES))
        if family in seen:
            errs.append(duplicate(f"spec.ipFamilies[{i}]", family))
        seen.add(str(family))
    policy = spec.get("ipFamilyPolicy")
    if policy is not None and policy not in IP_FAMILY_POLICIES:
        errs.append(not_supported("spec.ipFamilyPolicy", policy, IP_FAMILY_POLICIES))
    bad_ips = False
    for i, ip in enumerate(ips):
        if i == 0 and ip == "None":
            if len(ips) > 1:
                bad_ips = True
                errs.append(invalid("spec.clusterIPs", ips,
                                    "'None' must be the first and only value"))
            continue
        msgs = is_valid_ip(ip)
        bad_ips = bad_ips or bool(msgs)
        errs.extend(invalid(f"spec.clusterIPs[{i}]", ip, msg) for msg in msgs)
    if len(ips) > 2:
        errs.append(invalid("spec.clusterIPs", ips, "may only hold up to 2 values"))
    if bad_ips:
        return errs
    if len(ips) > 1:
        versions = {_version(ip) for ip in ips}
        if len(versions) != len(ips):
            errs.append(invalid("spec.clusterIPs", ips,
                                "may specify no more than one IP for each IP family"))
    if ips and families and not is_headless(spec):
        for i, (ip, family) in enumerate(zip(ips, families, strict=False)):
            version = _version(ip)
            if family == "IPv4" and version == 6:
                errs.append(invalid(f"spec.clusterIPs[{i}]", ip, "expected an IPv4 value as "
                                    f"indicated by `ipFamilies[{i}]`"))
            if family == "IPv6" and version != 6:
                errs.append(invalid(f"spec.clusterIPs[{i}]", ip, "expected an IPv6 value as "
                                    f"indicated by `ipFamilies[{i}]`"))
    return errs


def _session_affinity(spec: Obj) -> list[FieldError]:
    affinity = spec.get("sessionAffinity")
    if not affinity:
        return [required("spec.sessionAffinity")]
    if affinity not in SESSION_AFFINITIES:
        return [not_supported("spec.sessionAffinity", affinity, SESSION_AFFINITIES)]
    config = spec.get("sessionAffinityConfig")
    if affinity == "None":
        if config is not None:
            return [forbidden("spec.sessionAffinityConfig",
                              "must not be set when session affinity is None")]
        return []
    why = "when session affinity type is ClientIP"
    if not isinstance(config, dict):
        return [required("spec.sessionAffinityConfig", why)]
    client_ip = config.get("clientIP")
    if not isinstance(client_ip, dict):
        return [required("spec.sessionAffinityConfig.clientIP", why)]
    path = "spec.sessionAffinityConfig.clientIP.timeoutSeconds"
    timeout = client_ip.get("timeoutSeconds")
    if timeout is None:
        return [required(path, why)]
    number = as_int(timeout)
    if number is None or not 0 < number <= MAX_CLIENT_IP_AFFINITY_SECONDS:
        # Kubernetes' wording says "less than" although 86400 itself is accepted.
        return [invalid(path, timeout, "must be greater than 0 and less than "
                        f"{MAX_CLIENT_IP_AFFINITY_SECONDS}")]
    return []


def _traffic_policies(spec: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    etp = spec.get("externalTrafficPolicy") or ""
    if not externally_accessible(spec):
        if etp:
            errs.append(invalid("spec.externalTrafficPolicy", etp,
                                "may only be set for externally-accessible services"))
    elif not etp:
        errs.append(required("spec.externalTrafficPolicy"))
    elif etp not in TRAFFIC_POLICIES:
        errs.append(not_supported("spec.externalTrafficPolicy", etp, TRAFFIC_POLICIES))
    hc_port = spec.get("healthCheckNodePort")
    needs_health_check = spec.get("type") == "LoadBalancer" and etp == "Local"
    if hc_port and not needs_health_check:
        errs.append(invalid("spec.healthCheckNodePort", hc_port, "may only be set when `type` "
                            "is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
    elif hc_port is not None and not (as_int(hc_port) is not None and 0 <= hc_port <= 65535):
        errs.append(invalid("spec.healthCheckNodePort", hc_port, inclusive_range_error(0, 65535)))
    itp = spec.get("internalTrafficPolicy")
    if itp is None:
        # Other types may omit it, for objects stored before the field existed.
        if spec.get("type") in ("ClusterIP", "NodePort", "LoadBalancer"):
            errs.append(required("spec.internalTrafficPolicy"))
    elif itp not in TRAFFIC_POLICIES:
        errs.append(not_supported("spec.internalTrafficPolicy", itp, TRAFFIC_POLICIES))
    return errs


def _type_rules(spec: Obj, ports: list[Obj]) -> list[FieldError]:
    errs: list[FieldError] = []
    kind = spec.get("type")
    if kind in ("LoadBalancer", "NodePort") and is_headless(spec):
        errs.append(invalid("spec.clusterIPs[0]", "None",
                            f"may not be set to 'None' for {kind} services"))
    if kind == "LoadBalancer":
        for i, port in enumerate(ports):
            if port.get("port") == KUBELET_PORT:
                errs.append(invalid(f"spec.ports[{i}]", KUBELET_PORT, "may not expose port "
                                    f"{KUBELET_PORT} externally since it is used by kubelet"))
    if kind == "ExternalName":
        if cluster_ips(spec):
            errs.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        if as_list(spec.get("ipFamilies")):
            errs.append(forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
        if spec.get("ipFamilyPolicy") is not None:
            errs.append(forbidden("spec.ipFamilyPolicy",
                                  "may not be set for ExternalName services"))
        # A trailing dot marks the CNAME target as fully qualified.
        cname = str(spec.get("externalName") or "").removesuffix(".")
        if cname:
            errs.extend(invalid("spec.externalName", cname, msg)
                        for msg in is_dns1123_subdomain(cname))
        else:
            errs.append(required("spec.externalName"))
    if kind == "ClusterIP":
        errs.extend(forbidden(f"spec.ports[{i}].nodePort", "may not be used when `type` is "
                              "'ClusterIP'") for i, port in enumerate(ports) if port.get("nodePort"))
    if not kind:
        errs.append(required("spec.type"))
    elif kind not in SERVICE_TYPES:
        errs.append(not_supported("spec.type", kind, SERVICE_TYPES))
    return errs


def validate_service(obj: Obj) -> list[FieldError]:
    errs = object_meta(obj, namespaced=True, name_rule="dns1035")
    spec = as_dict(obj.get("spec"))
    ports = [as_dict(p) for p in as_list(spec.get("ports"))]
    if not ports and not is_headless(spec) and spec.get("type") != "ExternalName":
        errs.append(required("spec.ports"))
    errs.extend(_type_rules(spec, ports))
    names: set[str] = set()
    for i, port in enumerate(ports):
        errs.extend(_port(port, len(ports) > 1, names, f"spec.ports[{i}]"))
    if spec.get("selector") is not None:
        errs.extend(labels(spec.get("selector"), "spec.selector"))
    errs.extend(_session_affinity(spec))
    errs.extend(_cluster_ips_related(spec))
    for i, ip in enumerate(as_list(spec.get("externalIPs"))):
        msgs = is_valid_ip(str(ip)) or special_ip_errors(str(ip))
        errs.extend(invalid(f"spec.externalIPs[{i}]", ip, msg) for msg in msgs)
    seen_node_ports: set[tuple[Any, Any]] = set()
    seen_ports: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        node_port = port.get("nodePort")
        if node_port:
            node_key = (port.get("protocol"), node_port)
            if node_key in seen_node_ports:
                errs.append(duplicate(f"spec.ports[{i}].nodePort", node_port))
            seen_node_ports.add(node_key)
        key = (port.get("protocol"), port.get("port"))
        if key in seen_ports:
            errs.append(duplicate(f"spec.ports[{i}]", {"port": key[1], "protocol": key[0]}))
        seen_ports.add(key)
    errs.extend(_traffic_policies(spec))
    return errs


def _cluster_ip_changes(new_spec: Obj, old_spec: Obj) -> list[FieldError]:
    """Kubernetes' validateUpgradeDowngradeClusterIPs: the primary IP is fixed once set."""
    if "ExternalName" in (new_spec.get("type"), old_spec.get("type")):
        return []
    if is_headless(new_spec) and is_headless(old_spec):
        return []
    new_ips, old_ips = cluster_ips(new_spec), cluster_ips(old_spec)
    errs: list[FieldError] = []
    if len(new_ips) == len(old_ips):
        errs.extend(invalid(f"spec.clusterIPs[{i}]", new_ips, "may not change once set")
                    for i, ip in enumerate(old_ips) if ip != new_ips[i])
    elif len(old_ips) > len(new_ips):
        if not new_ips:
            errs.append(invalid("spec.clusterIPs[0]", new_ips,
                                "primary clusterIP can not be unset"))
        elif new_ips[0] != old_ips[0]:
            errs.append(invalid("spec.clusterIPs[0]", new_ips, "may not change once set"))
        if len(new_ips) == 1 and new_spec.get("ipFamilyPolicy") != "SingleStack":
            errs.append(invalid("spec.clusterIPs[0]", new_ips, "`ipFamilyPolicy` must be set "
                                "to 'SingleStack' when releasing the secondary clusterIP"))
    elif old_ips and new_ips[0] != old_ips[0]:
        errs.append(invalid("spec.clusterIPs[0]", new_ips, "may not change once set"))
    return errs


def _ip_family_changes(new_spec: Obj, old_spec: Obj) -> list[FieldError]:
    if "ExternalName" in (new_spec.get("type"), old_spec.get("type")):
        return []
    new_fam, old_fam = as_list(new_spec.get("ipFamilies")), as_list(old_spec.get("ipFamilies"))
    if old_fam and new_fam and new_fam[0] != old_fam[0]:
        return [invalid("spec.ipFamilies[0]", new_fam[0], "may not change once set")]
    return []


def validate_service_update(new: Obj, old: Obj) -> list[FieldError]:
    new_spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
    errs = object_meta_update(new, old)
    errs.extend(_cluster_ip_changes(new_spec, old_spec))
    errs.extend(_ip_family_changes(new_spec, old_spec))
    errs.extend(validate_service(new))
    return errs
