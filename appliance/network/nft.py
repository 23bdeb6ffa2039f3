"""Nube's nftables rulesets as text, each loaded whole by `nft -f` in one transaction: security groups
(inet), anti-spoofing (bridge) and a router's NAT (in its own namespace). Nothing here touches a table
that Nube did not name."""

from __future__ import annotations

from appliance.network.metadata import ADDRESS as METADATA  # reachable whatever the egress rules
from appliance.network.specs import Allow, PortFilter, PortGuard, RouterSpec


def ruleset(table: str, filters: list[tuple[str, PortFilter]]) -> str:
    """Our own nftables table, replaced whole in one transaction. Bridged IPv4 passes the inet forward
    hook (br_netfilter) with the bridge as iifname/oifname (host-notes §4), so each port is matched by
    its bridge and address. Egress first: what leaves a port that no egress rule allows drops, and
    what they allow `return`s, so the receiving port's ingress chain still has its say; anything to a
    port that no ingress rule allows, and that is not a reply, drops."""
    lines = [f"table inet {table}", f"delete table inet {table}"]
    if not filters:
        return "\n".join(lines) + "\n"
    lines += [f"table inet {table} {{", "  chain forward {",
              "    type filter hook forward priority 0; policy accept;"]  # fmt: skip
    for bridge, port in filters:
        if port.egress is not None:
            lines.append(f'    iifname "{bridge}" ip saddr {port.ip} jump e{_chain(port)}')
    for bridge, port in filters:
        lines.append(f'    oifname "{bridge}" ip daddr {port.ip} jump {_chain(port)}')
    lines.append("  }")
    for _, port in filters:
        lines += [f"  chain {_chain(port)} {{", "    ct state established,related accept",
                  "    ct state invalid drop", "    udp sport 67 udp dport 68 accept"]  # fmt: skip
        lines += [f"    {match} accept" for a in port.allows if (match := _match(a, "saddr"))]
        lines += ["    drop", "  }"]
        if port.egress is not None:
            lines += [f"  chain e{_chain(port)} {{", "    ct state established,related return",
                      "    ct state invalid drop", "    udp sport 68 udp dport 67 return",
                      f"    ip daddr {METADATA} tcp dport 80 return"]  # fmt: skip
            lines += [f"    {match} return" for a in port.egress if (match := _match(a, "daddr"))]
            lines += ["    drop", "  }"]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _match(allow: Allow, remote: str) -> str:
    """An nft match for one rule, `remote` the address field of the other end; "" never matches."""
    match = []
    if allow.sources is not None:
        if not allow.sources:
            return ""
        match.append(f"ip {remote} {{ " + ", ".join(allow.sources) + " }")
    if allow.protocol in ("tcp", "udp"):
        ports = (
            ""
            if allow.port_min is None
            else f" {allow.protocol} dport {allow.port_min}-{allow.port_max or allow.port_min}"
        )
        match.append(f"meta l4proto {allow.protocol}{ports}")
    elif allow.protocol == "icmp":
        match.append("meta l4proto icmp")
    return " ".join(match) or "meta nfproto ipv4"


def nat_ruleset(gateway_leg: str, router: RouterSpec) -> str:
    """NAT inside a router's own namespace: floating IPs DNAT in and SNAT out, the rest of the
    subnets behind it SNAT to the gateway address. Nothing here touches the host's tables."""
    lines = ["table ip nube_nat", "delete table ip nube_nat"]
    if router.gateway is None:
        return "\n".join(lines) + "\n"
    lines += ["table ip nube_nat {", "  chain pre {", "    type nat hook prerouting priority -100;"]
    lines += [f"    ip daddr {fip} dnat to {fixed}" for fip, fixed in router.floating]
    lines += ["  }", "  chain post {", "    type nat hook postrouting priority 100;"]
    lines += [
        f'    ip saddr {fixed} oifname "{gateway_leg}" snat to {fip}'
        for fip, fixed in router.floating
    ]
    if router.snat_from:
        sources = ", ".join(router.snat_from)
        lines.append(
            f'    ip saddr {{ {sources} }} oifname "{gateway_leg}" snat to {router.gateway.address}'
        )
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def guard_ruleset(table: str, guards: list[tuple[str, PortGuard]]) -> str:
    """A bridge-family table: frames from a server's tap must carry its MAC and (for IPv4 and ARP) one
    of its addresses, or 0.0.0.0 while it asks for DHCP; it may not answer as a DHCP server."""
    lines = [f"table bridge {table}", f"delete table bridge {table}"]
    if not guards:
        return "\n".join(lines) + "\n"
    lines += [f"table bridge {table} {{", "  chain forward {",
              "    type filter hook forward priority 0; policy accept;"]  # fmt: skip
    for tap, guard in guards:
        lines.append(f'    iifname "{tap}" jump g_{guard.port_id.replace("-", "")}')
    lines.append("  }")
    for _, guard in guards:
        ips = ", ".join(("0.0.0.0", *guard.ips))
        macs = f"{{ {', '.join((guard.mac, *guard.macs))} }}" if guard.macs else guard.mac
        lines += [
            f"  chain g_{guard.port_id.replace('-', '')} {{",
            f"    ether saddr != {macs} drop",
            f"    ether type ip ip saddr != {{ {ips} }} drop",
            "    ether type ip udp sport 67 drop",
            f"    ether type arp arp saddr ether != {macs} drop",
            f"    ether type arp arp saddr ip != {{ {ips} }} drop",
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _chain(port: PortFilter) -> str:
    return f"p_{port.port_id.replace('-', '')}_{port.ip.replace('.', '_').replace('/', '_')}"


def host_ruleset(table: str, bridges: list[str]) -> str:
    """Bridges where the host holds an address (`public`) carry traffic between the host and the
    routers only: the host never forwards between them and its other interfaces on Nube's behalf,
    whatever its own ip_forward and firewall say (outbound NAT is not Nube's to switch on)."""
    lines = [f"table inet {table}", f"delete table inet {table}"]
    if not bridges:
        return "\n".join(lines) + "\n"
    names = ", ".join(f'"{b}"' for b in bridges)
    lines += [f"table inet {table} {{", "  chain forward {",
              "    type filter hook forward priority -10; policy accept;",
              f"    iifname {{ {names} }} oifname != {{ {names} }} drop",
              f"    oifname {{ {names} }} iifname != {{ {names} }} drop",
              "  }", "}"]  # fmt: skip
    return "\n".join(lines) + "\n"
