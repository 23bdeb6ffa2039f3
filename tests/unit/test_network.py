"""Network service logic on in-memory SQLite with the datapath kept in memory (live=False): IP
allocation, tenant isolation, quotas, wire shapes and what converge asks the kernel for."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.app import CATALOG_SERVICES, MIGRATIONS
from appliance.cloud import Cloud
from appliance.config import Config
from appliance.context import Context
from appliance.db import migrate, open_db
from appliance.errors import Conflict, Invalid, NotFound, OverQuota
from appliance.identity.catalog import Catalog
from appliance.network import ipam, wire
from appliance.network.datapath import dnsmasq_args
from appliance.network.specs import DhcpSpec


def member(project: str) -> Context:
    return Context(user_id=f"u-{project}", user_name=project, user_domain_id="default",
                   roles=frozenset({"member", "reader"}), project_id=project)  # fmt: skip


ADMIN = Context(user_id="a", user_name="admin", user_domain_id="default",
                roles=frozenset({"admin", "member", "reader"}), project_id="admin-p")  # fmt: skip


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    db = open_db(None)
    migrate(db, MIGRATIONS)
    config = Config(
        data_dir=tmp_path, password_time_cost=1, password_memory_kib=8, password_parallelism=1
    )
    the_cloud = Cloud.build(config, db, Catalog(CATALOG_SERVICES, "RegionOne"), in_memory=True)
    the_cloud.start()
    yield the_cloud
    db.close()


def run(cloud: Cloud, fn: Any) -> Any:
    async def go() -> Any:
        result = fn()
        if inspect.isawaitable(result):
            result = await result
        await cloud.jobs.wait_idle()
        return result

    return asyncio.run(go())


def net_with_subnet(cloud: Cloud, ctx: Context, cidr: str = "10.0.0.0/24") -> tuple[str, str]:
    net = run(cloud, lambda: cloud.network.create_network(ctx, {"name": "n"}))
    sub = run(
        cloud, lambda: cloud.network.create_subnet(ctx, {"network_id": net["id"], "cidr": cidr})
    )
    return net["id"], sub["id"]


# -- ipam ------------------------------------------------------------------------------------------


def test_default_gateway_is_the_first_host_and_the_pool_the_rest() -> None:
    network = ipam.parse_cidr("10.0.0.0/24")
    gateway = ipam.gateway(network, None, False)
    assert gateway == "10.0.0.1"
    assert ipam.pools(network, None, gateway) == [{"start": "10.0.0.2", "end": "10.0.0.254"}]


def test_a_gateway_inside_the_range_splits_the_default_pool() -> None:
    network = ipam.parse_cidr("10.0.0.0/29")
    assert ipam.pools(network, None, "10.0.0.3") == [
        {"start": "10.0.0.1", "end": "10.0.0.2"},
        {"start": "10.0.0.4", "end": "10.0.0.6"},
    ]


def test_explicit_null_gateway_means_none() -> None:
    assert ipam.gateway(ipam.parse_cidr("10.0.0.0/24"), None, True) is None


def test_next_free_skips_used_addresses_and_ends_with_none() -> None:
    pools = [{"start": "10.0.0.2", "end": "10.0.0.3"}]
    assert ipam.next_free(pools, ["10.0.0.2"]) == "10.0.0.3"
    assert ipam.next_free(pools, ["10.0.0.2", "10.0.0.3"]) is None


@pytest.mark.parametrize("cidr", ["10.0.0.1/24", "fd00::/64", "nonsense", "10.0.0.0/31"])
def test_bad_cidrs_are_invalid(cidr: str) -> None:
    with pytest.raises(Invalid):
        ipam.parse_cidr(cidr)


def test_a_pool_holding_the_gateway_is_invalid() -> None:
    with pytest.raises(Invalid):
        ipam.pools(
            ipam.parse_cidr("10.0.0.0/24"), [{"start": "10.0.0.1", "end": "10.0.0.9"}], "10.0.0.1"
        )


# -- service ---------------------------------------------------------------------------------------


def test_ports_get_sequential_addresses_after_the_dhcp_port(cloud: Cloud) -> None:
    ctx = member("p1")
    net, _ = net_with_subnet(cloud, ctx)
    first = run(cloud, lambda: cloud.network.create_port(ctx, {"network_id": net}))
    second = run(cloud, lambda: cloud.network.create_port(ctx, {"network_id": net}))
    ips = [cloud.network.fixed_ips(p["id"])[0]["ip_address"] for p in (first, second)]
    assert ips == ["10.0.0.3", "10.0.0.4"]  # .1 gateway, .2 DHCP
    assert first["mac_address"].startswith("fa:16:3e:")


def test_a_taken_fixed_ip_is_a_conflict(cloud: Cloud) -> None:
    ctx = member("p1")
    net, sub = net_with_subnet(cloud, ctx)
    spec = {"network_id": net, "fixed_ips": [{"subnet_id": sub, "ip_address": "10.0.0.50"}]}
    run(cloud, lambda: cloud.network.create_port(ctx, spec))
    with pytest.raises(Conflict):
        run(cloud, lambda: cloud.network.create_port(ctx, spec))


def test_another_projects_network_is_not_found_unless_shared(cloud: Cloud) -> None:
    net, _ = net_with_subnet(cloud, member("p1"))
    with pytest.raises(NotFound):
        cloud.network.get_network(member("p2"), net)
    assert [n["id"] for n in cloud.network.list_networks(member("p2"))] == []
    shared = run(
        cloud, lambda: cloud.network.create_network(ADMIN, {"name": "pub", "shared": True})
    )
    assert cloud.network.get_network(member("p2"), shared["id"])["id"] == shared["id"]


def test_network_quota_is_a_keystone_limit(cloud: Cloud) -> None:
    cloud.limits.ensure_defaults("network", {"network": 1})
    service_id = cloud.limits._service_id("network")
    cloud.db.execute("UPDATE registered_limits SET default_limit = 1 WHERE service_id = ? AND resource_name = "
                     "'network'", [service_id])  # fmt: skip
    run(cloud, lambda: cloud.network.create_network(member("p1"), {}))
    with pytest.raises(OverQuota):
        run(cloud, lambda: cloud.network.create_network(member("p1"), {}))


def test_a_network_with_a_server_port_cannot_be_deleted(cloud: Cloud) -> None:
    ctx = member("p1")
    net, _ = net_with_subnet(cloud, ctx)
    run(cloud, lambda: cloud.network.bind_ports(ctx, "server-1", "vm", [{"uuid": net}]))
    with pytest.raises(Conflict):
        run(cloud, lambda: cloud.network.delete_network(ctx, net))
    run(cloud, lambda: cloud.network.release_ports("server-1"))
    run(cloud, lambda: cloud.network.delete_network(ctx, net))


def test_auto_picks_the_projects_only_network(cloud: Cloud) -> None:
    ctx = member("p1")
    net_with_subnet(cloud, ctx)
    run(cloud, lambda: cloud.network.bind_ports(ctx, "s1", "vm", [{"auto": True}]))
    addresses = cloud.network.addresses("s1")
    assert list(addresses) == ["n"]
    assert (
        addresses["n"][0]["addr"] == "10.0.0.3" and addresses["n"][0]["OS-EXT-IPS:type"] == "fixed"
    )


def test_converge_builds_a_bridge_and_dhcp_namespace_and_removes_them_with_the_network(
    cloud: Cloud,
) -> None:
    ctx = member("p1")
    net, sub = net_with_subnet(cloud, ctx)
    names = cloud.network.datapath.names
    assert names.bridge(net) in cloud.network.datapath.links()
    assert cloud.network.datapath.namespaces() == {names.namespace(sub)}
    run(cloud, lambda: cloud.network.delete_network(ctx, net))
    assert cloud.network.datapath.links() == set()
    assert cloud.network.datapath.namespaces() == set()


def test_reconcile_removes_prefixed_leftovers_no_row_owns(cloud: Cloud) -> None:
    names = cloud.network.datapath.names
    cloud.network.datapath.fake_links.add(names.bridge("deadbeef-0000"))
    cloud.network.datapath.fake_namespaces.add(names.namespace("gone"))
    run(cloud, cloud.network.reconcile)
    assert cloud.network.datapath.links() == set()
    assert cloud.network.datapath.namespaces() == set()


def test_interface_names_fit_the_kernel_limit(cloud: Cloud) -> None:
    names = cloud.network.datapath.names
    some = "0123abcd-4567-89ab-cdef-0123456789ab"
    assert all(len(n) <= 15 for n in (names.bridge(some), names.veth(some), names.tap(some)))


def test_dnsmasq_serves_dhcp_only_on_its_veth() -> None:
    spec = DhcpSpec("s", "10.0.0.0/24", "10.0.0.2", "10.0.0.1", ("9.9.9.9",), 1500, ())
    args = dnsmasq_args(spec, Path("/run/x"))
    assert "--port=0" in args and "--bind-interfaces" in args
    assert "--dhcp-range=10.0.0.0,static,255.255.255.0,86400s" in args
    assert "--dhcp-option=option:router,10.0.0.1" in args


# -- wire ------------------------------------------------------------------------------------------


def test_subnet_list_fields_are_never_null(cloud: Cloud) -> None:
    _, sub = net_with_subnet(cloud, member("p1"))
    body = wire.subnet_json(cloud.network.get_subnet(member("p1"), sub))
    for key in ("allocation_pools", "dns_nameservers", "host_routes", "service_types", "tags"):
        assert isinstance(body[key], list), key
    assert body["tenant_id"] == body["project_id"] == "p1"


def test_fields_projection_and_filters() -> None:
    items = [{"id": "1", "name": "a", "shared": False}, {"id": "2", "name": "b", "shared": True}]
    assert wire.select(items, {"name": ["b"]}) == [items[1]]
    assert wire.select(items, {"shared": ["false"]}) == [items[0]]
    assert wire.project(items[0], ["id"]) == {"id": "1"}


def test_default_security_group_has_neutrons_four_rules(cloud: Cloud) -> None:
    groups = cloud.security_groups.list_groups(member("p1"))
    assert [g["name"] for g in groups] == ["default"]
    rules = cloud.security_groups.rules(groups[0]["id"])
    assert sorted((r["direction"], r["ethertype"]) for r in rules) == [
        ("egress", "IPv4"), ("egress", "IPv6"), ("ingress", "IPv4"), ("ingress", "IPv6")]  # fmt: skip


def test_deleting_a_server_releases_its_ports_but_keeps_a_users_own(cloud: Cloud) -> None:
    ctx = member("p1")
    net, _ = net_with_subnet(cloud, ctx)
    own = run(cloud, lambda: cloud.network.create_port(ctx, {"network_id": net, "name": "mine"}))
    run(
        cloud,
        lambda: cloud.network.bind_ports(ctx, "s1", "vm", [{"uuid": net}, {"port": own["id"]}]),
    )
    assert len(cloud.network.server_ports("s1")) == 2
    run(cloud, lambda: cloud.network.release_ports("s1"))
    assert cloud.network.server_ports("s1") == []
    assert [
        p["name"] for p in cloud.network.list_ports(ctx) if p["device_owner"] != "network:dhcp"
    ] == ["mine"]
    assert cloud.network.get_port(ctx, own["id"])["device_id"] == ""


def test_a_server_port_in_the_default_group_lets_in_only_its_group(cloud: Cloud) -> None:
    ctx = member("p1")
    net, _ = net_with_subnet(cloud, ctx)
    run(cloud, lambda: cloud.network.bind_ports(ctx, "s1", "vm", [{"uuid": net}]))
    (spec,) = cloud.network.desired()
    (port,) = spec.filters
    assert port.ip == "10.0.0.3"
    assert [a.sources for a in port.allows] == [("10.0.0.3",)]
    assert (
        "jump" in cloud.network.datapath.fake_ruleset
        and "drop" in cloud.network.datapath.fake_ruleset
    )


def test_a_rule_for_tcp_80_from_anywhere_reaches_the_ruleset(cloud: Cloud) -> None:
    ctx = member("p1")
    net, _ = net_with_subnet(cloud, ctx)
    run(cloud, lambda: cloud.network.bind_ports(ctx, "s1", "vm", [{"uuid": net}]))
    default = cloud.security_groups.list_groups(ctx)[0]
    spec = {"security_group_id": default["id"], "direction": "ingress", "protocol": "tcp",
            "port_range_min": 80, "port_range_max": 80, "remote_ip_prefix": "0.0.0.0/0"}  # fmt: skip
    run(cloud, lambda: cloud.security_groups.create_rule(ctx, spec))
    text = cloud.network.datapath.fake_ruleset
    assert "    meta l4proto tcp tcp dport 80-80 accept" in text
    assert " jump e" not in text  # the default group lets anything out: no egress chain
    with pytest.raises(Conflict):
        run(cloud, lambda: cloud.security_groups.create_rule(ctx, spec))


def test_without_an_any_egress_rule_only_what_the_rules_allow_leaves_the_port(cloud: Cloud) -> None:
    ctx = member("p1")
    net, _ = net_with_subnet(cloud, ctx)
    run(cloud, lambda: cloud.network.bind_ports(ctx, "s1", "vm", [{"uuid": net}]))
    default = cloud.security_groups.list_groups(ctx)[0]
    for rule in cloud.security_groups.rules(default["id"]):
        if rule["direction"] == "egress":
            run(cloud, lambda r=rule: cloud.security_groups.delete_rule(ctx, r["id"]))
    (port,) = cloud.network.desired()[0].filters
    assert port.egress == ()
    spec = {"security_group_id": default["id"], "direction": "egress", "protocol": "tcp",
            "port_range_min": 8080, "port_range_max": 8080, "remote_ip_prefix": "192.0.2.0/24"}  # fmt: skip
    run(cloud, lambda: cloud.security_groups.create_rule(ctx, spec))
    text = cloud.network.datapath.fake_ruleset
    chain = text[text.index("  chain ep_") :]
    chain = chain[: chain.index("  }")]
    assert "ip daddr { 192.0.2.0/24 } meta l4proto tcp tcp dport 8080-8080 return" in chain
    assert "ip daddr 169.254.169.254 tcp dport 80 return" in chain and chain.rstrip().endswith(
        "drop"
    )
    # Egress jumps come before ingress ones, and allowed egress returns (the receiver's ingress decides).
    assert text.index(" jump ep_") < text.index(f" ip daddr {port.ip} jump p_")


def test_no_server_ports_means_the_table_is_only_deleted() -> None:
    from appliance.network.nft import ruleset

    assert ruleset("nbabcd_sg", []) == "table inet nbabcd_sg\ndelete table inet nbabcd_sg\n"


def test_a_group_in_use_by_a_port_cannot_be_deleted(cloud: Cloud) -> None:
    ctx = member("p1")
    net, _ = net_with_subnet(cloud, ctx)
    group = cloud.security_groups.create_group(ctx, {"name": "web"})
    run(
        cloud,
        lambda: cloud.network.create_port(ctx, {"network_id": net, "security_groups": ["web"]}),
    )
    with pytest.raises(Conflict):
        cloud.security_groups.delete_group(ctx, group["id"])


def test_a_router_interface_takes_the_gateway_and_gets_a_namespace_leg(cloud: Cloud) -> None:
    ctx = member("p1")
    net, sub = net_with_subnet(cloud, ctx)
    router = run(cloud, lambda: cloud.routers.create(ctx, {"name": "r"}))
    answer = run(cloud, lambda: cloud.routers.add_interface(ctx, router["id"], {"subnet_id": sub}))
    assert cloud.network.fixed_ips(answer["port_id"])[0]["ip_address"] == "10.0.0.1"
    (spec,) = cloud.routers.desired()
    assert [(leg.address, leg.prefixlen) for leg in spec.legs] == [("10.0.0.1", 24)]
    names = cloud.network.datapath.names
    assert names.router_namespace(router["id"]) in cloud.network.datapath.namespaces()
    with pytest.raises(Conflict):
        run(cloud, lambda: cloud.routers.delete(ctx, router["id"]))
    with pytest.raises(Conflict):
        run(cloud, lambda: cloud.network.delete_subnet(ctx, sub))
    run(cloud, lambda: cloud.routers.remove_interface(ctx, router["id"], {"subnet_id": sub}))
    run(cloud, lambda: cloud.routers.delete(ctx, router["id"]))
    run(cloud, lambda: cloud.network.delete_network(ctx, net))
    assert cloud.network.datapath.namespaces() == set() and cloud.network.datapath.links() == set()


def test_another_projects_router_is_not_found(cloud: Cloud) -> None:
    router = run(cloud, lambda: cloud.routers.create(member("p1"), {"name": "r"}))
    with pytest.raises(NotFound):
        cloud.routers.get(member("p2"), router["id"])


def test_a_server_port_is_guarded_against_spoofing_its_mac_and_address(cloud: Cloud) -> None:
    ctx = member("p1")
    net, _ = net_with_subnet(cloud, ctx)
    run(cloud, lambda: cloud.network.bind_ports(ctx, "s1", "vm", [{"uuid": net}]))
    (port,) = cloud.network.server_ports("s1")
    text = cloud.network.datapath.fake_ruleset
    assert f'iifname "{cloud.network.tap(port["id"])}" jump' in text
    assert f"ether saddr != {port['mac_address']} drop" in text
    assert "ip saddr != { 0.0.0.0, 10.0.0.3 } drop" in text


def test_a_floating_ip_needs_a_router_from_its_network_to_the_ports_subnet(cloud: Cloud) -> None:
    ctx = member("p1")
    ext = run(
        cloud, lambda: cloud.network.create_network(ADMIN, {"name": "ext", "router:external": True})
    )
    run(cloud, lambda: cloud.network.create_subnet(ADMIN, {"network_id": ext["id"], "cidr": "192.0.2.0/24",
                                                           "enable_dhcp": False}))  # fmt: skip
    net, sub = net_with_subnet(cloud, ctx)
    port = run(cloud, lambda: cloud.network.create_port(ctx, {"network_id": net}))
    fip = run(cloud, lambda: cloud.floating_ips.create(ctx, {"floating_network_id": ext["id"]}))
    with pytest.raises(NotFound):
        run(cloud, lambda: cloud.floating_ips.update(ctx, fip["id"], {"port_id": port["id"]}))
    router = run(
        cloud,
        lambda: cloud.routers.create(ctx, {"external_gateway_info": {"network_id": ext["id"]}}),
    )
    run(cloud, lambda: cloud.routers.add_interface(ctx, router["id"], {"subnet_id": sub}))
    run(cloud, lambda: cloud.floating_ips.update(ctx, fip["id"], {"port_id": port["id"]}))
    (spec,) = cloud.routers.desired()
    assert spec.floating == ((fip["floating_ip_address"], "10.0.0.3"),)
    assert spec.gateway is not None and spec.gateway_via == "192.0.2.1"
    assert spec.snat_from == ("10.0.0.0/24",)


def test_nat_rules_stay_inside_the_router_namespace_table() -> None:
    from appliance.network.nft import nat_ruleset
    from appliance.network.specs import RouterLeg, RouterSpec

    leg = RouterLeg("p", "n", "fa:16:3e:00:00:01", "192.0.2.10", 24)
    text = nat_ruleset(
        "qgabc",
        RouterSpec("r", (), leg, "192.0.2.1", ("10.0.0.0/24",), (("192.0.2.20", "10.0.0.3"),)),
    )
    assert "ip daddr 192.0.2.20 dnat to 10.0.0.3" in text
    assert 'ip saddr 10.0.0.3 oifname "qgabc" snat to 192.0.2.20' in text
    assert 'ip saddr { 10.0.0.0/24 } oifname "qgabc" snat to 192.0.2.10' in text
