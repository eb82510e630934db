"""OPC UA: a real asyncua client on 127.0.0.1 drives the gateway (simulated camera and detector).

One server for the module (an asyncua server takes seconds to build its address space): ``rig`` sets a
long deadline for the cycle tests, ``fault_rig`` a short one for the fault tests (``set_deadline``).
Every test leaves the camera plugged and the detector healthy, and counts results relative to where it
started.
"""
from __future__ import annotations

import asyncio
import logging
import time

import pytest

pytest.importorskip("asyncua", reason="the plc extra is not installed (pip install 'tocoad-edge[plc]')")

from asyncua import Client, ua  # noqa: E402

from plc_helpers import CYCLE_DEADLINE_S, DEADLINE_S, HEARTBEAT_S, make_gateway  # noqa: E402
from tocoad_edge.plc import OpcUaConfig, OpcUaSecurityConfig, OpcUaServer  # noqa: E402
from tocoad_edge.plc.cycle_check import opcua_cycles_async  # noqa: E402
from tocoad_edge.plc.opcua_nodes import NODES  # noqa: E402
from tocoad_edge.plc.simulation import expected_score  # noqa: E402

NAMES = [spec.name for spec in NODES]


@pytest.fixture(scope="module")
def served():
    gateway, camera, detector = make_gateway(deadline_s=CYCLE_DEADLINE_S)
    with gateway, OpcUaServer(gateway.handshake, OpcUaConfig(host="127.0.0.1", port=0,
                                                                  security=OpcUaSecurityConfig(mode="none"))) as server:
        yield gateway, camera, detector, server


def _healthy(rig, deadline_s: float):
    gateway, camera, detector, _ = rig
    camera.plug()
    detector.heal()
    detector.delay_s = 0.0
    gateway.handshake.set_deadline(deadline_s)
    assert gateway.handshake.wait_for(lambda s: s.ready, 5.0) is not None
    return rig


@pytest.fixture
def rig(served):
    return _healthy(served, CYCLE_DEADLINE_S)


@pytest.fixture
def fault_rig(served):
    return _healthy(served, DEADLINE_S)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


class Plc:
    """A thin asyncua client that reads DataValues (value + status) by node name."""

    def __init__(self, client: Client, server: OpcUaServer):
        self.client = client
        self.nodes = {n: client.get_node(server.node_id(n)) for n in NAMES}

    async def read(self, *names: str) -> dict[str, ua.DataValue]:
        dvs = await self.client.read_attributes([self.nodes[n] for n in names])
        return dict(zip(names, dvs))

    async def value(self, name: str):
        return (await self.read(name))[name].Value.Value

    async def poll(self, until, *names: str, limit_s: float = 10.0):
        start = time.monotonic()
        while True:
            dvs = await self.read(*names)
            if until(dvs):
                return dvs, time.monotonic() - start
            if time.monotonic() - start > limit_s:
                last = {k: (v.Value.Value if v.Value else None, v.StatusCode.name) for k, v in dvs.items()}
                raise AssertionError(f"condition not reached within {limit_s} s: {last}")
            await asyncio.sleep(0.002)

    async def write(self, name: str, value) -> None:
        await self.nodes[name].write_value(value)

    async def ack(self) -> None:
        await self.client.write_values([self.nodes["Trigger"], self.nodes["Ack"]], [False, True])
        await self.poll(lambda d: not d["Done"].Value.Value, "Done")
        await self.write("Ack", False)


def connect(server: OpcUaServer) -> Client:
    return Client(server.endpoint, timeout=10)


def val(dv: ua.DataValue):
    return dv.Value.Value if dv.Value is not None else None


def test_1000_trigger_cycles_no_lost_duplicated_or_out_of_order_result(rig) -> None:
    gateway, _, _, server = rig
    start_seq = gateway.snapshot().result_seq
    report = run(opcua_cycles_async(server.endpoint, server.node_id, 1000, score_of=expected_score))
    print("\n" + report.summary())
    assert report.problems == []
    assert report.cycles == 1000
    assert report.seqs == list(range(start_seq + 1, start_seq + 1001))
    assert all(b > a for a, b in zip(report.frame_ids, report.frame_ids[1:]))
    assert {1, 2} <= set(report.results)
    assert gateway.snapshot().triggers_ignored == 0


def test_node_set_identity_and_status_codes(rig) -> None:
    gateway, _, _, server = rig

    async def body():
        async with connect(server) as client:
            plc = Plc(client, server)
            d = await plc.read("ModelId", "BundleHash", "Mode", "Ready", "Result", "Score")
            assert val(d["ModelId"]) == "simulated-frame-mean"
            assert val(d["BundleHash"]) == "0123456789abcdef" * 4
            assert val(d["Mode"]) == "triggered" and val(d["Ready"]) is True
            # idle: the last result is not the current one, so never Good
            assert d["Result"].StatusCode.is_uncertain() and d["Score"].StatusCode.is_uncertain()
            await plc.write("Trigger", True)
            d, _ = await plc.poll(lambda d: val(d["Done"]), "Done", "Result", "Score", "FrameId", "ResultSeq")
            assert d["Result"].StatusCode.is_good() and d["Score"].StatusCode.is_good()
            assert val(d["Score"]) == expected_score(val(d["FrameId"]))
            await plc.ack()
            d = await plc.read("Result", "Score", "Busy")
            assert d["Result"].StatusCode.name == "UncertainLastUsableValue"
            # the namespace and nodes are browsable by name
            ns = await client.get_namespace_index(server.config.namespace_uri)
            obj = await client.nodes.objects.get_child([f"{ns}:{server.config.object_name}"])
            children = {(await c.read_browse_name()).Name for c in await obj.get_children()}
            assert set(NAMES) <= children
    run(body())


def test_malformed_writes_are_rejected_logged_and_leave_the_cycle_alone(rig, caplog) -> None:
    gateway, _, detector, server = rig
    detector.delay_s = 0.01
    caplog.set_level(logging.WARNING, logger="tocoad_edge.plc.opcua")
    rejected_before = gateway.snapshot().writes_rejected

    async def body():
        async with connect(server) as client:
            plc = Plc(client, server)
            seq = await plc.value("ResultSeq")
            bad = [
                ("Done", True, "BadUserAccessDenied"),                                  # read-only node
                ("Score", 0.0, "BadUserAccessDenied"),
                ("Trigger", ua.Variant(7, ua.VariantType.Int32), "BadTypeMismatch"),    # wrong type
                ("Ack", ua.Variant("yes", ua.VariantType.String), "BadTypeMismatch"),
            ]
            for i in range(3 * len(bad)):
                name, value, code = bad[i % len(bad)]
                await plc.write("Trigger", True)
                with pytest.raises(ua.UaStatusCodeError) as err:              # lands while Busy
                    await plc.write(name, value)
                assert type(err.value).__name__ == code
                d, _ = await plc.poll(lambda d: val(d["Done"]), "Done", "ResultSeq", "Score", "FrameId", "Result")
                assert val(d["ResultSeq"]) == seq + 1 and d["Result"].StatusCode.is_good()
                assert val(d["Score"]) == expected_score(val(d["FrameId"]))
                seq += 1
                await plc.ack()
                await plc.poll(lambda d: val(d["Ready"]), "Ready")
            return len(bad) * 3
    count = run(body())
    snap = gateway.snapshot()
    assert snap.writes_rejected - rejected_before == count
    assert snap.triggers_ignored == 0
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert any("Done" in m and "BadUserAccessDenied" in m for m in refused)
    assert any("BadTypeMismatch" in m for m in refused)


def test_source_disappears_error_and_bad_within_the_deadline_then_ready_again(fault_rig) -> None:
    gateway, camera, _, server = fault_rig

    async def body():
        async with connect(server) as client:
            plc = Plc(client, server)
            seq = await plc.value("ResultSeq")
            camera.unplug()
            unplugged = time.monotonic()
            d, _ = await plc.poll(lambda d: val(d["Result"]) == 3 or d["Result"].StatusCode.is_bad(),
                                  "Result", "Score", "Ready", "ErrorCode", "Heartbeat")
            detect_s = time.monotonic() - unplugged
            print(f"\nopcua: camera unplugged → Bad after {detect_s * 1000:.0f} ms "
                  f"(deadline {DEADLINE_S * 1000:.0f} ms)")
            assert d["Result"].StatusCode.name == "BadSensorFailure" and d["Score"].StatusCode.is_bad()
            assert val(d["Score"]) is None                                    # a Bad value is null, never stale
            assert val(d["Ready"]) is False and val(d["ErrorCode"]) == 1
            heartbeat = val(d["Heartbeat"])
            await asyncio.sleep(4 * HEARTBEAT_S)
            assert await plc.value("Heartbeat") == heartbeat
            await plc.write("Trigger", True)                                      # answered at once: Error
            d, _ = await plc.poll(lambda d: val(d["Done"]), "Done", "ResultSeq", "Result", "ResultText")
            assert val(d["ResultSeq"]) == seq + 1 and d["Result"].StatusCode.is_bad()
            await plc.ack()
            camera.plug()
            d, waited = await plc.poll(lambda d: val(d["Ready"]), "Ready", "ErrorCode", "Result", "Heartbeat")
            print(f"opcua: camera back → Ready after {waited * 1000:.0f} ms")
            assert val(d["ErrorCode"]) == 0 and d["Result"].StatusCode.is_uncertain()
            await plc.poll(lambda x: val(x["Heartbeat"]) != val(d["Heartbeat"]), "Heartbeat")
            return seq

    seq = run(body())
    report = run(opcua_cycles_async(server.endpoint, server.node_id, 5, score_of=expected_score))
    assert report.problems == [] and report.seqs == [seq + 2 + i for i in range(5)]


@pytest.mark.parametrize("failure, status, code", [("fail", "BadDeviceFailure", 3),
                                                   ("hang", "BadDeviceFailure", 4)])
def test_model_failure_gives_bad_then_recovers_without_restart(fault_rig, failure, status, code) -> None:
    gateway, _, detector, server = fault_rig
    late_before = gateway.snapshot().late_results

    async def body():
        async with connect(server) as client:
            plc = Plc(client, server)
            getattr(detector, failure)()
            await plc.write("Trigger", True)
            d, waited = await plc.poll(lambda d: val(d["Done"]), "Done", "Result", "ErrorCode", "Ready")
            print(f"\nopcua: detector {failure} → {d['Result'].StatusCode.name} after {waited * 1000:.0f} ms")
            assert d["Result"].StatusCode.name == status and val(d["ErrorCode"]) == code
            await plc.ack()
            assert await plc.value("Ready") is False
            detector.heal()
            await plc.poll(lambda d: val(d["Ready"]), "Ready")
            if failure == "hang":
                deadline = time.monotonic() + 5
                while gateway.snapshot().late_results == late_before and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                assert gateway.snapshot().late_results == late_before + 1
            await plc.write("Trigger", True)
            d, _ = await plc.poll(lambda d: val(d["Done"]), "Done", "Result")
            assert d["Result"].StatusCode.is_good() and val(d["Result"]) in (1, 2)
            await plc.ack()
    run(body())


def test_stopped_gateway_is_bad_never_stale_good_and_restarts(fault_rig) -> None:
    gateway, _, _, server = fault_rig

    async def body():
        async with connect(server) as client:
            plc = Plc(client, server)
            await plc.write("Trigger", True)
            await plc.poll(lambda d: val(d["Done"]), "Done")
            d = await plc.read("Result")
            assert d["Result"].StatusCode.is_good()
            gateway.stop()
            d, _ = await plc.poll(lambda d: d["Result"].StatusCode.is_bad(), "Result", "Ready", "ErrorCode")
            assert d["Result"].StatusCode.name == "BadShutdown" and val(d["Ready"]) is False
            assert val(d["ErrorCode"]) == 5
            await plc.write("Trigger", False)
            gateway.start()                                  # same server, same handshake, no new connection
            d, _ = await plc.poll(lambda d: val(d["Ready"]), "Ready", "Result")
            assert not d["Result"].StatusCode.is_bad()
    run(body())


def test_modbus_and_opcua_serve_the_same_handshake(rig) -> None:
    pytest.importorskip("pymodbus")
    from tocoad_edge.plc import ModbusConfig, ModbusServer
    from tocoad_edge.plc.cycle_check import modbus_cycles

    gateway, _, _, server = rig
    with ModbusServer(gateway.handshake, ModbusConfig(port=0)) as modbus:
        report = modbus_cycles("127.0.0.1", modbus.port, 5, score_of=expected_score)

        async def body():
            async with connect(server) as client:
                plc = Plc(client, server)
                d, _ = await plc.poll(lambda d: val(d["ResultSeq"]) == report.seqs[-1], "ResultSeq", "FrameId",
                                      "Score")
                return val(d["FrameId"]), d["Score"].StatusCode.name
        frame_id, status = run(body())
    assert report.problems == []
    assert frame_id == report.frame_ids[-1] and status == "UncertainLastUsableValue"   # acknowledged via Modbus


def test_subscriptions_see_results_with_their_status(rig) -> None:
    gateway, _, _, server = rig

    class Collector:
        def __init__(self):
            self.changes = []

        def datachange_notification(self, node, value, data):
            self.changes.append((node.nodeid.Identifier.split(".")[-1], value,
                                 data.monitored_item.Value.StatusCode.name))

    async def body():
        async with connect(server) as client:
            plc = Plc(client, server)
            collector = Collector()
            subscription = await client.create_subscription(10, collector)
            await subscription.subscribe_data_change([plc.nodes[n] for n in ("Done", "ResultSeq", "Score")])
            seq = await plc.value("ResultSeq")
            await plc.write("Trigger", True)
            deadline = time.monotonic() + 10
            while not any(n == "ResultSeq" and v == seq + 1 for n, v, _ in collector.changes):
                assert time.monotonic() < deadline, collector.changes
                await asyncio.sleep(0.01)
            while not any(n == "Done" and v is True for n, v, _ in collector.changes):
                assert time.monotonic() < deadline, collector.changes
                await asyncio.sleep(0.01)
            await plc.ack()
            await subscription.delete()
            return seq, collector.changes
    seq, changes = run(body())
    scores = [(v, status) for n, v, status in changes if n == "Score"]
    assert any(status == "Good" for _, status in scores)
    assert scores[0][1] != "Good"                   # the initial value of an idle gateway is not a current verdict


def test_a_client_calling_itself_admin_cannot_write_status_nodes(rig) -> None:
    gateway, _, _, server = rig

    async def body():
        client = Client(server.endpoint, timeout=10)
        client.set_user("admin")
        client.set_password("admin")
        async with client:
            plc = Plc(client, server)
            with pytest.raises(ua.UaStatusCodeError) as err:
                await plc.write("Ready", False)
            assert type(err.value).__name__ == "BadUserAccessDenied"
            assert await plc.value("Ready") is True
    run(body())
