"""IPv4 address management: subnet defaults (gateway, allocation pools) and picking free addresses."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from appliance.errors import Invalid

Pool = dict[str, str]  # {"start": ..., "end": ...}


def parse_cidr(cidr: object) -> ipaddress.IPv4Network:
    if not isinstance(cidr, str):
        raise Invalid("Invalid input for cidr: a string like 10.0.0.0/24 is required.")
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        raise Invalid(
            f"Invalid input for cidr. Reason: '{cidr}' is not a valid IP subnet ({exc})."
        ) from None
    if not isinstance(network, ipaddress.IPv4Network):
        raise Invalid("Only IPv4 subnets are supported here (ip_version 4).")
    if network.prefixlen > 30:
        raise Invalid(f"Subnet {cidr} is too small: at most /30.")
    return network


def _address(value: object, network: ipaddress.IPv4Network, what: str) -> ipaddress.IPv4Address:
    try:
        address = ipaddress.IPv4Address(str(value))
    except ValueError:
        raise Invalid(f"Invalid input for {what}: '{value}' is not a valid IPv4 address.") from None
    if address not in network or address in (network.network_address, network.broadcast_address):
        raise Invalid(f"{what} {address} is not a usable address of {network}.")
    return address


def gateway(network: ipaddress.IPv4Network, requested: object, given: bool) -> str | None:
    """The first host unless the caller gave one; an explicit null means no gateway."""
    if not given:
        return str(network.network_address + 1)
    if requested is None:
        return None
    return str(_address(requested, network, "gateway_ip"))


def pools(network: ipaddress.IPv4Network, requested: object, gateway_ip: str | None) -> list[Pool]:
    """The caller's pools, checked; else every host address but the gateway, as Neutron does."""
    if requested is None:
        first, last = network.network_address + 1, network.broadcast_address - 1
        gw = ipaddress.IPv4Address(gateway_ip) if gateway_ip else None
        if gw == first:
            first += 1
        elif gw == last:
            last -= 1
        if gw is not None and first < gw < last:
            return [
                {"start": str(first), "end": str(gw - 1)},
                {"start": str(gw + 1), "end": str(last)},
            ]
        return [{"start": str(first), "end": str(last)}]
    if not isinstance(requested, list):
        raise Invalid("allocation_pools must be a list of {start, end}.")
    result: list[Pool] = []
    for pool in requested:
        if not isinstance(pool, dict):
            raise Invalid("allocation_pools must be a list of {start, end}.")
        start = _address(pool.get("start"), network, "allocation pool start")
        end = _address(pool.get("end"), network, "allocation pool end")
        if end < start:
            raise Invalid(f"Allocation pool {start}-{end} ends before it starts.")
        if gateway_ip and start <= ipaddress.IPv4Address(gateway_ip) <= end:
            raise Invalid(f"Gateway ip {gateway_ip} conflicts with allocation pool {start}-{end}.")
        result.append({"start": str(start), "end": str(end)})
    return result


def check_address(network: ipaddress.IPv4Network, value: object) -> str:
    return str(_address(value, network, "ip_address"))


def next_free(pool_list: Sequence[Pool], used: Iterable[str]) -> str | None:
    """The lowest address of the pools not in `used`, or None when the pools are exhausted."""
    taken = {ipaddress.IPv4Address(u) for u in used}
    for pool in pool_list:
        address, end = ipaddress.IPv4Address(pool["start"]), ipaddress.IPv4Address(pool["end"])
        while address <= end:
            if address not in taken:
                return str(address)
            address += 1
    return None
