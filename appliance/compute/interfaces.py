"""Nova's os-interface: plug a port (given, or made on a network) into a server, and unplug it.

Synchronous as in Nova: the answer comes once the NIC is in the domain (hot-plugged when it runs,
and in its definition either way), so `openstack server add port` returns with the port bound."""

from __future__ import annotations

import asyncio
from typing import Any

from appliance.compute.domain_xml import Nic
from appliance.compute.hypervisor import Hypervisor, HypervisorError
from appliance.compute.models import VmState
from appliance.compute.servers import Servers
from appliance.context import Context
from appliance.errors import Conflict, Invalid, NotFound

ATTACHABLE = {VmState.ACTIVE, VmState.PAUSED, VmState.STOPPED, VmState.SUSPENDED}
Row = dict[str, Any]


class Interfaces:
    def __init__(self, servers: Servers, hypervisor: Hypervisor, network: Any) -> None:
        self.servers = servers
        self.hv = hypervisor
        self.network = network

    def list(self, ctx: Context, server_id: str) -> list[Row]:
        self.servers.get(ctx, server_id)
        return [self._with_ips(p) for p in self.network.server_ports(server_id)]

    def get(self, ctx: Context, server_id: str, port_id: str) -> Row:
        for port in self.list(ctx, server_id):
            if port["id"] == port_id:
                return port
        raise NotFound(f"Port {port_id} is not attached")

    def _with_ips(self, port: Row) -> Row:
        return {**port, "fixed_ips": self.network.fixed_ips(port["id"])}

    def _ready(self, ctx: Context, server_id: str, action: str) -> Any:
        server = self.servers._writable(ctx, server_id)
        if server.vm_state not in ATTACHABLE or server.task_state is not None:
            raise Conflict(
                f"Cannot '{action}' instance {server_id} while it is in vm_state "
                f"{server.vm_state}, task_state {server.task_state}"
            )
        return server

    async def attach(self, ctx: Context, server_id: str, spec: dict[str, Any]) -> Row:
        server = self._ready(ctx, server_id, "attach_interface")
        port_id, net_id, fixed = spec.get("port_id"), spec.get("net_id"), spec.get("fixed_ips")
        if port_id and fixed:
            raise Invalid("Specifying both port_id and fixed_ips is not supported.")
        request: dict[str, Any]
        if port_id:
            request = {"port": str(port_id)}
        elif net_id:
            request = {"uuid": str(net_id)}
            if fixed:
                if not isinstance(fixed, list) or len(fixed) != 1 or not isinstance(fixed[0], dict):
                    raise Invalid("fixed_ips takes one {ip_address} here.")
                request["fixed_ip"] = fixed[0].get("ip_address")
        else:
            request = {"auto": True}
        bound = self.network.bind_ports(ctx, server_id, server.hostname, [request])
        if not bound:
            raise Invalid("No network to attach to: give a net_id or a port_id.")
        port_id = bound[0]
        try:
            await self.network.settled()
            port = self.network.port_row(port_id)
            nic = Nic(port["mac_address"], self.network.bridge(port["network_id"]),
                      self.network.tap(port_id))  # fmt: skip
            await asyncio.to_thread(self.hv.attach_nic, server.domain_name, nic)
        except HypervisorError as exc:
            self.network.release_port(server_id, port_id)
            raise Conflict(
                f"Failed to attach network adapter device to {server_id}: {exc}"
            ) from exc
        except BaseException:
            self.network.release_port(server_id, port_id)
            raise
        self.servers.record(ctx, server_id, "attach_interface")
        return self.get(ctx, server_id, port_id)

    async def detach(self, ctx: Context, server_id: str, port_id: str) -> None:
        server = self._ready(ctx, server_id, "detach_interface")
        port = self.get(ctx, server_id, port_id)
        try:
            await asyncio.to_thread(self.hv.detach_nic, server.domain_name, port["mac_address"])
        except HypervisorError as exc:
            raise Conflict(
                f"Failed to detach network adapter device from {server_id}: {exc}"
            ) from exc
        self.network.release_port(server_id, port_id)
        self.servers.record(ctx, server_id, "detach_interface")
