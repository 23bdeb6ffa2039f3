"""The networks a fresh cloud starts with, as DevStack leaves them: an external network `public` whose
bridge gives the host its gateway address (floating IPs answer the host), and in the admin project a
`private` network routed to it by `router1` with SNAT. Made once, on the first start."""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess

from appliance.context import Context
from appliance.network.routers import Routers
from appliance.network.service import Network

log = logging.getLogger("nube.network")


def create_default_networks(
    net: Network, routers: Routers, admin: Context, public_cidr: str, private_cidr: str
) -> None:
    """`public` (no DHCP; the host holds its first address) and `private` behind `router1`."""
    public = ipaddress.ip_network(public_cidr, strict=True)
    private = ipaddress.ip_network(private_cidr, strict=True)
    if public.overlaps(private):
        raise ValueError(f"public_cidr {public} and private_cidr {private} overlap")
    if net.datapath.live:
        clash = host_route_overlapping(public)
        if clash is not None:
            log.error(
                "default networks not made: public_cidr %s overlaps this host's route to %s "
                "(choose another with --public-cidr or public_cidr in nube.toml)", public, clash,
            )  # fmt: skip
            return
    host = str(next(public.hosts()))
    ext = net.create_network(admin, {"name": "public", "router:external": True})
    net.create_subnet(
        admin,
        {"name": "public-subnet", "network_id": ext["id"], "cidr": str(public),
         "gateway_ip": host, "enable_dhcp": False},
    )  # fmt: skip
    with net.db.atomic():
        net.db.execute(
            "INSERT INTO host_addresses (network_id, address, prefixlen) VALUES (?,?,?)",
            [ext["id"], host, public.prefixlen],
        )
    inner = net.create_network(admin, {"name": "private"})
    subnet = net.create_subnet(
        admin, {"name": "private-subnet", "network_id": inner["id"], "cidr": str(private)}
    )
    router = routers.create(
        admin, {"name": "router1", "external_gateway_info": {"network_id": ext["id"]}}
    )
    routers.add_interface(admin, router["id"], {"subnet_id": subnet["id"]})
    net.kick()
    log.info(
        "default networks: public %s (host address %s), private %s behind router1",
        public, host, private,
    )  # fmt: skip


def host_route_overlapping(cidr: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str | None:
    """A route of the host's main table into `cidr` (other than the default route), if any: the
    host's address on `public` would shadow or be shadowed by it. (`ip -j`, not pyroute2: this runs
    on the event loop, where pyroute2's own loop cannot start.)"""
    done = subprocess.run(["ip", "-j", "-4", "route", "show"], capture_output=True, text=True,
                          timeout=30, check=True)  # fmt: skip
    for route in json.loads(done.stdout or "[]"):
        dst = route.get("dst", "default")
        if dst == "default":
            continue
        network = ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False)
        if network.overlaps(cidr):
            return str(network)
    return None
