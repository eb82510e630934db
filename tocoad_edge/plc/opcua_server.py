"""OPC UA server (asyncua) for the handshake; node set in ``opcua_nodes``.

* Every handshake change is pushed into the address space (so subscriptions see it), in an order that
  keeps a one-request read consistent: flags that fall are written first, then the verdict, then flags
  that rise — Done is never True next to the previous cycle's score.
* Verdict nodes carry Good / Uncertain / Bad status codes (``opcua_nodes.verdict_status``); a stale
  result is never marked Good, and everything is Bad while the camera or the model is down.
* Security (``opcua_security``): signed and encrypted by default, trusted client certificates, user names and
  passwords, writes by operators only. ``opcua.security.mode: none`` (anonymous, plain text) only when a
  config says so, with a warning at start.
* Clients get the ordinary user role (remote "admin" is off): writing a read-only node is refused
  (BadUserAccessDenied), a wrong type too (BadTypeMismatch). Refused writes are logged and counted
  (``WritesRejected``); Trigger and Ack accept Booleans only.
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import logging
from typing import Any

from ..errors import ResourceError
from .config import OpcUaConfig
from .handshake import Handshake
from .loop_thread import LoopThread
from .opcua_nodes import NODES, NodeSpec, verdict_status
from .snapshot import Snapshot
from .throttled_log import ThrottledLog

log = logging.getLogger("tocoad_edge.plc.opcua")


def _import_asyncua() -> Any:
    try:
        import asyncua
        from asyncua import Server, ua
        from asyncua.common.callback import CallbackType
    except ImportError as exc:
        raise ResourceError("the OPC UA transport needs asyncua", got=f"{type(exc).__name__}: {exc}",
                            fix="pip install 'tocoad-edge[plc]'  (or: pip install 'asyncua>=1.1')") from None
    return asyncua, Server, ua, CallbackType


class OpcUaServer:
    """Serve ``handshake`` over OPC UA (security per ``config.security``, see docs/plc.md)."""

    def __init__(self, handshake: Handshake, config: OpcUaConfig | None = None):
        self.handshake = handshake
        self.config = config or OpcUaConfig()
        self.port: int | None = None
        self.namespace_index: int | None = None
        self._loop = LoopThread("tocoad-plc-opcua")
        self._server: Any = None
        self._ua: Any = None
        self._nodes: dict[str, Any] = {}            # name → NodeId
        self._written: dict[str, tuple[Any, str]] = {}   # name → (value, status) last pushed
        self._pending: Snapshot | None = None
        self._flushing = False
        self._own: Any = None                       # the DataValue we are writing ourselves (see _setter)
        self._unsubscribe: Any = None
        self._rejections = ThrottledLog(log)
        self.security = ""

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.config.host}:{self.port}{self.config.path}"

    def node_id(self, name: str) -> str:
        """The NodeId string a client uses, e.g. ``ns=2;s=Gateway.Trigger``."""
        return f"ns={self.namespace_index};s={self.config.object_name}.{name}"

    def start(self) -> "OpcUaServer":
        if self._server is not None:
            return self
        self._loop.start()
        try:
            self._loop.run(self._serve(), timeout=60.0)
        except BaseException:
            self._loop.stop()
            raise
        self._unsubscribe = self.handshake.subscribe(self._on_change)
        log.info("OPC UA server at %s (namespace %s, object %s; %s)", self.endpoint, self.config.namespace_uri,
                 self.config.object_name, self.security)
        return self

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._server is not None:
            try:
                self._loop.run(self._server.stop(), timeout=10.0)
            except Exception:
                log.exception("OPC UA server stop failed")
            self._server = None
        self._loop.stop()

    def __enter__(self) -> "OpcUaServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ setup (on the loop)
    async def _serve(self) -> None:
        _, Server, ua, CallbackType = _import_asyncua()
        self._ua = ua
        cfg = self.config
        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://{cfg.host}:{cfg.port}{cfg.path}")
        server.set_server_name("tocoad-edge PLC gateway")
        if cfg.security.mode == "none":
            log.warning("OPC UA security is OFF (opcua.security.mode: none): anyone who reaches %s:%s can read and "
                        "write Trigger/Ack, unauthenticated and in plain text. Use it on an isolated bench only.",
                        cfg.host, cfg.port)
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            self.security = "security none"
        else:
            from .opcua_security import secure

            self.security = await secure(server, cfg.security, self._write_denied)
        server.allow_remote_admin(False)        # no client may write the gateway's own nodes, even as "admin"
        idx = await server.register_namespace(cfg.namespace_uri)
        obj = await server.nodes.objects.add_object(ua.NodeId(cfg.object_name, idx),
                                                    ua.QualifiedName(cfg.object_name, idx))
        snap = self.handshake.snapshot()
        for spec in NODES:
            node = await obj.add_variable(ua.NodeId(f"{cfg.object_name}.{spec.name}", idx),
                                          ua.QualifiedName(spec.name, idx),
                                          ua.Variant(spec.value(snap), getattr(ua.VariantType, spec.variant)))
            await node.write_attribute(ua.AttributeIds.Description,
                                       ua.DataValue(ua.Variant(ua.LocalizedText(spec.doc))))
            if spec.writable:
                await node.set_writable()
                server.set_attribute_value_setter(node.nodeid, self._setter(spec))
            self._nodes[spec.name] = node.nodeid
        server.subscribe_server_callback(CallbackType.PostWrite, self._after_write)
        try:
            await server.start()
        except OSError as exc:
            raise ResourceError(f"cannot listen for OPC UA on {cfg.host}:{cfg.port}", got=str(exc),
                                fix="choose a free port (opcua.port) or stop the program using it") from None
        self._server = server
        self.namespace_index = idx
        self.port = server.bserver.port if server.bserver is not None else cfg.port
        await self._push(self.handshake.snapshot())

    # ------------------------------------------------------------------ PLC writes
    def _setter(self, spec: NodeSpec) -> Any:
        ua = self._ua
        write = self.handshake.write_trigger if spec.name == "Trigger" else self.handshake.write_ack

        def setter(node_data: Any, attr: Any, datavalue: Any) -> None:
            node_data.attributes[attr].value = datavalue
            if datavalue is self._own:              # our own mirror of the handshake, not the PLC
                return
            value = datavalue.Value.Value if datavalue.Value is not None else None
            if not isinstance(value, bool):
                self._rejections.warning("OPC UA write to %s refused: expected a Boolean, got %r", spec.name, value)
                self.handshake.count_rejected_write()
                raise ua.UaStatusCodeError(ua.StatusCodes.BadTypeMismatch)
            write(value)
        return setter

    def _write_denied(self, user: Any) -> None:
        name = getattr(user, "name", None)
        self._rejections.warning("OPC UA write refused: user %r may only read (BadUserAccessDenied); expected: a "
                                 "user with role operator", name)
        self.handshake.count_rejected_write()

    async def _after_write(self, event: Any, _dispatcher: Any) -> None:
        params, results = event.request_params, event.response_params or []
        names = {v: k for k, v in self._nodes.items()}
        for request, status in zip(params.NodesToWrite, results):
            if status.is_good():
                continue
            node = names.get(request.NodeId, request.NodeId.to_string())
            value = request.Value.Value.Value if request.Value and request.Value.Value else None
            self._rejections.warning("OPC UA write to %s refused: %s (got %r); expected: Trigger or Ack, Boolean",
                                     node, status.name, value)
            self.handshake.count_rejected_write()

    # ------------------------------------------------------------------ publication
    def _on_change(self, snap: Snapshot) -> None:
        """Handshake listener (any thread): keep the latest snapshot, make sure one flush is scheduled."""
        self._pending = snap
        self._loop.call_soon(self._schedule_flush)

    def _schedule_flush(self) -> None:
        if not self._flushing and self._pending is not None and self._server is not None:
            self._flushing = True
            asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        try:
            while self._pending is not None:
                snap, self._pending = self._pending, None
                await self._push(snap)
        except Exception:
            log.exception("OPC UA publication failed")
        finally:
            self._flushing = False

    async def _push(self, snap: Snapshot) -> None:
        ua = self._ua
        status_name = verdict_status(snap)
        now = _dt.datetime.now(_dt.timezone.utc)
        # (node, value, status) per changed node, in three groups: see the module docstring for the order
        falling: list[tuple[NodeSpec, Any, str]] = []
        payload: list[tuple[NodeSpec, Any, str]] = []
        rising: list[tuple[NodeSpec, Any, str]] = []
        for spec in NODES:
            value = spec.value(snap)
            status = status_name if spec.verdict else "Good"
            if self._written.get(spec.name) == (value, status):
                continue
            self._written[spec.name] = (value, status)
            if spec.variant == "Boolean":
                (rising if value else falling).append((spec, value, status))
            else:
                payload.append((spec, value, status))
        for spec, value, status in falling + payload + rising:
            dv = ua.DataValue(ua.Variant(value, getattr(ua.VariantType, spec.variant)),
                              StatusCode=ua.StatusCode(getattr(ua.StatusCodes, status)),
                              SourceTimestamp=now, ServerTimestamp=now)
            self._own = dv
            try:
                await self._server.write_attribute_value(self._nodes[spec.name], dv)
            finally:
                self._own = None
