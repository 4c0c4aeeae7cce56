"""discovery/v1 EndpointSlice and legacy core/v1 Endpoints validation."""

from __future__ import annotations

from netplane.model.fielderrors import (
    FieldError,
    duplicate,
    invalid,
    not_supported,
    required,
    too_many,
)
from netplane.model.names import (
    inclusive_range_error,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_fully_qualified_domain_name,
    is_qualified_name,
    is_valid_ip,
    is_valid_ipv4,
    is_valid_ipv6,
    is_valid_port_num,
    special_ip_errors,
)
from netplane.model.validation.meta import (
    Obj,
    as_dict,
    as_int,
    as_list,
    immutable,
    labels,
    object_meta,
    object_meta_update,
)
from netplane.model.validation.service import protocol

ADDRESS_TYPES = ["FQDN", "IPv4", "IPv6"]
MAX_ENDPOINTS = 1000
MAX_ADDRESSES = 100
# Kubernetes' validation allows 20000 ports per slice (the API docs' "100" is what the
# controller produces, not what the apiserver enforces).
MAX_PORTS = 20000


def _address(address: str, address_type: str, path: str) -> list[FieldError]:
    if address_type == "IPv4":
        msgs = is_valid_ipv4(address) or special_ip_errors(address)
    elif address_type == "IPv6":
        msgs = is_valid_ipv6(address) or special_ip_errors(address)
    elif address_type == "FQDN":
        msgs = is_fully_qualified_domain_name(address)
    else:
        msgs = []  # Unknown types are reported on addressType, not per address.
    return [invalid(path, address, msg) for msg in msgs]


def _endpoints(endpoints: list[object], address_type: str) -> list[FieldError]:
    if len(endpoints) > MAX_ENDPOINTS:
        return [too_many("endpoints", len(endpoints), MAX_ENDPOINTS)]
    errs: list[FieldError] = []
    for i, endpoint in enumerate(endpoints):
        endpoint = as_dict(endpoint)
        at = f"endpoints[{i}]"
        addresses = as_list(endpoint.get("addresses"))
        if not addresses:
            errs.append(required(f"{at}.addresses", "must contain at least 1 address"))
        elif len(addresses) > MAX_ADDRESSES:
            errs.append(too_many(f"{at}.addresses", len(addresses), MAX_ADDRESSES))
        for j, address in enumerate(addresses):
            errs.extend(_address(str(address), address_type, f"{at}.addresses[{j}]"))
        node_name = endpoint.get("nodeName")
        if node_name is not None:
            errs.extend(invalid(f"{at}.nodeName", node_name, msg)
                        for msg in is_dns1123_subdomain(str(node_name)))
        hostname = endpoint.get("hostname")
        if hostname is not None:
            errs.extend(invalid(f"{at}.hostname", hostname, msg)
                        for msg in is_dns1123_label(str(hostname)))
        errs.extend(labels(endpoint.get("deprecatedTopology"), f"{at}.deprecatedTopology"))
    return errs


def _slice_ports(ports: list[object]) -> list[FieldError]:
    if len(ports) > MAX_PORTS:
        return [too_many("ports", len(ports), MAX_PORTS)]
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        port = as_dict(port)
        at = f"ports[{i}]"
        name = port.get("name") or ""
        if name:
            errs.extend(invalid(f"{at}.name", name, msg) for msg in is_dns1123_label(name))
        if name in names:
            errs.append(duplicate(f"{at}.name", name))
        names.add(name)
        number = port.get("port")
        if number is not None and not (as_int(number) is not None and 0 <= number <= 65535):
            errs.append(invalid(f"{at}.port", number, inclusive_range_error(0, 65535)))
        errs.extend(protocol(port.get("protocol"), f"{at}.protocol"))
        if port.get("appProtocol") is not None:
            errs.extend(invalid(f"{at}.appProtocol", port["appProtocol"], msg)
                        for msg in is_qualified_name(str(port["appProtocol"])))
    return errs


def validate_endpoint_slice(obj: Obj) -> list[FieldError]:
    errs = object_meta(obj, namespaced=True)
    address_type = obj.get("addressType") or ""
    if not address_type:
        errs.append(required("addressType"))
    elif address_type not in ADDRESS_TYPES:
        errs.append(not_supported("addressType", address_type, ADDRESS_TYPES))
    errs.extend(_endpoints(as_list(obj.get("endpoints")), address_type))
    errs.extend(_slice_ports(as_list(obj.get("ports"))))
    return errs


def validate_endpoint_slice_update(new: Obj, old: Obj) -> list[FieldError]:
    errs = object_meta_update(new, old)
    errs.extend(validate_endpoint_slice(new))
    errs.extend(immutable(new.get("addressType"), old.get("addressType"), "addressType"))
    return errs


def _endpoint_address(address: Obj, path: str) -> list[FieldError]:
    ip = str(address.get("ip") or "")
    errs = [invalid(f"{path}.ip", ip, msg) for msg in is_valid_ip(ip) or special_ip_errors(ip)]
    hostname = address.get("hostname")
    if hostname:
        errs.extend(invalid(f"{path}.hostname", hostname, msg)
                    for msg in is_dns1123_label(hostname))
    node_name = address.get("nodeName")
    if node_name:
        errs.extend(invalid(f"{path}.nodeName", node_name, msg)
                    for msg in is_dns1123_subdomain(node_name))
    return errs


def validate_endpoints(obj: Obj) -> list[FieldError]:
    errs = object_meta(obj, namespaced=True)
    for i, subset in enumerate(as_list(obj.get("subsets"))):
        subset = as_dict(subset)
        at = f"subsets[{i}]"
        addresses = as_list(subset.get("addresses"))
        not_ready = as_list(subset.get("notReadyAddresses"))
        if not addresses and not not_ready:
            errs.append(required(at, "must specify `addresses` or `notReadyAddresses`"))
        for j, address in enumerate(addresses):
            errs.extend(_endpoint_address(as_dict(address), f"{at}.addresses[{j}]"))
        for j, address in enumerate(not_ready):
            errs.extend(_endpoint_address(as_dict(address), f"{at}.notReadyAddresses[{j}]"))
        ports = as_list(subset.get("ports"))
        for j, port in enumerate(ports):
            port = as_dict(port)
            pat = f"{at}.ports[{j}]"
            name = port.get("name") or ""
            if len(ports) > 1 and not name:
                errs.append(required(f"{pat}.name"))
            elif name:
                errs.extend(invalid(f"{pat}.name", name, msg) for msg in is_dns1123_label(name))
            number = as_int(port.get("port"))
            errs.extend(invalid(f"{pat}.port", port.get("port"), msg)
                        for msg in is_valid_port_num(number if number is not None else 0))
            errs.extend(protocol(port.get("protocol"), f"{pat}.protocol"))
    return errs
