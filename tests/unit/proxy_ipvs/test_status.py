"""`netplane proxy status` in IPVS mode: the kernel's virtual servers as one table."""

from __future__ import annotations

from pathlib import Path

from netplane.cli.proxy import _table
from netplane.proxy_ipvs.procfs import parse_ip_vs
from netplane.proxy_ipvs.status import HEADER, rows

IP_VS = (Path(__file__).parents[1] / "trace" / "testdata" / "ip_vs").read_text()


def test_every_virtual_server_is_a_row_with_its_real_servers_and_connections() -> None:
    assert _table(HEADER, rows(parse_ip_vs(IP_VS))).splitlines() == [
        "VIRTUAL-SERVER   PROTO   SCHEDULER   PERSISTENT   REAL-SERVERS   ACTIVE   INACTIVE",
        "10.96.0.20:80    TCP     rr          -            2              1        1",
        "10.96.0.21:80    TCP     rr          10800s       1              1        0",
        "10.96.0.22:80    TCP     rr          -            0              0        0",
        "10.96.0.23:90    UDP     rr          -            1              0        0",
    ]
