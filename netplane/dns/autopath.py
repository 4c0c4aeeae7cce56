"""Server-side search path (what CoreDNS calls autopath). Pure.

A pod's resolver, with `ndots:5` and the search path `<ns>.svc.<zone> svc.<zone> <zone>
<node's searches>`, asks `www.example.com.<ns>.svc.<zone>` first, gets NXDOMAIN, and walks
the rest of the list: five round trips before it asks `www.example.com` itself. The server
knows that list (the pod's namespace, from its IP, and the node's searches), so at the
first NXDOMAIN it walks the list itself and answers with a CNAME from the asked name to the
first name that exists, followed by that name's records. The client's resolver takes the
CNAME chain as the answer, so one round trip replaces five.

Only names below the namespace's own first search domain are walked: a query of
`x.<ns>.svc.<zone>` from a pod of namespace <ns>. Anything else (another namespace, a
client that is not a pod) gets the plain answer.
"""

from __future__ import annotations

from collections.abc import Sequence


def search_path(namespace: str, zone: str, host_searches: Sequence[str] = ()) -> list[str]:
    """A ClusterFirst pod's search domains, as the kubelet writes them."""
    first = [f"{namespace}.svc.{zone}", f"svc.{zone}", zone]
    return first + [s for s in host_searches if s not in first]


def candidates(qname: str, namespace: str, zone: str, host_searches: Sequence[str] = ()) -> list[str]:
    """The names the client would ask after `qname` got NXDOMAIN, in order, ending with the
    name as typed; empty when `qname` is not below the namespace's first search domain."""
    path = search_path(namespace, zone, host_searches)
    suffix = "." + path[0]
    if not qname.endswith(suffix):
        return []
    base = qname[: -len(suffix)]
    if not base:
        return []
    return [f"{base}.{domain}" for domain in path[1:]] + [base]
