"""Drive N trigger cycles from the PLC side and check every result: a commissioning check and a benchmark.

Plays the PLC with a real client (pymodbus or asyncua): Trigger, wait for Done with the next
``result_seq``, read the verdict, Ack, wait for Ready. Records the trigger-to-result latency seen by
the client and lists every lost, duplicated or out-of-order result. Used by the tests, by
``benchmarks/plc_cycles.py``, and against a real gateway from another machine.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from . import modbus_map as regmap


@dataclass
class CycleReport:
    transport: str
    cycles: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    frame_ids: list[int] = field(default_factory=list)
    results: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(round(q / 100.0 * (len(ordered) - 1))))]

    def summary(self) -> str:
        return (f"{self.transport}: {self.cycles} cycles in {self.wall_s:.1f} s, trigger→result "
                f"p50 {self.percentile(50):.2f} ms, p99 {self.percentile(99):.2f} ms, "
                f"max {max(self.latencies_ms, default=float('nan')):.2f} ms, problems: {len(self.problems)}")

    def check(self, seq: int, frame_id: int, previous_seq: int, previous_frame: int | None) -> None:
        n = len(self.seqs)
        if seq != previous_seq + 1:
            kind = "duplicated" if seq == previous_seq else "lost" if seq > previous_seq + 1 else "out of order"
            self.problems.append(f"cycle {n}: result_seq {seq} after {previous_seq} ({kind})")
        if previous_frame is not None and frame_id <= previous_frame:
            self.problems.append(f"cycle {n}: frame id {frame_id} not after {previous_frame}")


def _wait(poll: Callable[[], Any], until: Callable[[Any], bool], timeout_s: float, what: str) -> Any:
    end = time.monotonic() + timeout_s
    while True:
        value = poll()
        if until(value):
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"{what} not seen within {timeout_s:.1f} s (last read: {value!r})")


# The two "Done for the next cycle" tests take the previous result_seq as an argument, so each cycle's test
# holds that cycle's value, not the loop variable that the loop then moves on.
def _modbus_done(previous_seq: int) -> Callable[[list[int]], bool]:
    """Holding registers with Done set and a result_seq other than ``previous_seq``."""
    return lambda r: r[regmap.DONE] == 1 and regmap.decode_u32(r, regmap.RESULT_SEQ) != previous_seq


def _opcua_done(previous_seq: int) -> Callable[[list[Any]], bool]:
    """DataValues of (Done, ResultSeq, …) with Done true and a ResultSeq other than ``previous_seq``."""
    return lambda d: bool(d[0].Value.Value) and d[1].Value.Value != previous_seq


def modbus_cycles(host: str, port: int, cycles: int, *, timeout_s: float = 10.0,
                  score_of: Callable[[int], float] | None = None, score_scale: int | None = None,
                  device_id: int = 1) -> CycleReport:
    """Run ``cycles`` triggered cycles with a pymodbus client.

    ``score_of(frame_id)``: the score each frame must have (a check that verdicts belong to their frames).
    ``device_id``: the unit id to address (the gateway's ``modbus.unit_id`` when it sets one).
    """
    from pymodbus.client import ModbusTcpClient

    report = CycleReport("modbus")
    client = ModbusTcpClient(host, port=port, timeout=timeout_s)
    if not client.connect():
        raise ConnectionError(f"cannot connect to Modbus TCP {host}:{port}")
    try:
        def read(address: int = 0, count: int = regmap.PHASE + 1) -> list[int]:
            reply = client.read_holding_registers(address, count=count, device_id=device_id)
            if reply.isError():
                raise RuntimeError(f"Modbus read refused: {reply}")
            registers: list[int] = reply.registers   # pymodbus is followed as Any
            return registers

        def write(address: int, values: list[int]) -> None:
            reply = client.write_registers(address, values, device_id=device_id) if len(values) > 1 else \
                client.write_register(address, values[0], device_id=device_id)
            if reply.isError():
                raise RuntimeError(f"Modbus write refused: {reply}")

        regs = _wait(read, lambda r: r[regmap.READY] == 1, timeout_s, "Ready")
        scale = score_scale or regs[regmap.SCORE_SCALE]
        previous_seq = regmap.decode_u32(regs, regmap.RESULT_SEQ)
        previous_frame: int | None = None
        start = time.perf_counter()
        for i in range(cycles):
            t0 = time.perf_counter()
            write(regmap.TRIGGER, [1])
            regs = _wait(read, _modbus_done(previous_seq), timeout_s, f"Done for cycle {i}")
            report.latencies_ms.append((time.perf_counter() - t0) * 1000.0)
            seq = regmap.decode_u32(regs, regmap.RESULT_SEQ)
            frame_id = regmap.decode_u32(regs, regmap.FRAME_ID)
            report.check(seq, frame_id, previous_seq, previous_frame)
            if regs[regmap.QUALITY] != 0:
                report.problems.append(f"cycle {i}: quality {regs[regmap.QUALITY]} (result {regs[regmap.RESULT]})")
            if score_of is not None and regs[regmap.SCORE] != regmap.scale_score(score_of(frame_id), scale):
                report.problems.append(f"cycle {i}: score register {regs[regmap.SCORE]} does not belong to "
                                       f"frame {frame_id}")
            report.seqs.append(seq)
            report.frame_ids.append(frame_id)
            report.results.append(regs[regmap.RESULT])
            report.scores.append(regs[regmap.SCORE] / scale)
            previous_seq, previous_frame = seq, frame_id
            write(regmap.TRIGGER, [0, 1])                       # drop Trigger, raise Ack in one request
            _wait(lambda: read(regmap.DONE, 1)[0], lambda d: d == 0, timeout_s, "Done dropping after Ack")
            write(regmap.ACK, [0])
            _wait(lambda: read(regmap.READY, 1)[0], lambda r: r == 1, timeout_s, "Ready after the cycle")
            report.cycles += 1
        report.wall_s = time.perf_counter() - start
    finally:
        client.close()
    return report


async def opcua_cycles_async(endpoint: str, node_id: Callable[[str], str], cycles: int, *, timeout_s: float = 10.0,
                             score_of: Callable[[int], float] | None = None,
                             secure: Callable[[Any], Awaitable[None]] | None = None) -> CycleReport:
    """Run ``cycles`` triggered cycles with an asyncua client. ``node_id(name)`` gives each node's id string;
    ``secure(client)``, when given, sets the client's security and user before it connects."""
    from asyncua import Client

    report = CycleReport("opcua")
    names = ["Trigger", "Ack", "Ready", "Done", "ResultSeq", "Result", "Score", "FrameId"]
    client = Client(endpoint, timeout=timeout_s)
    if secure is not None:
        await secure(client)
    async with client:
        nodes = {n: client.get_node(node_id(n)) for n in names}
        verdict = [nodes[n] for n in ("Done", "ResultSeq", "Result", "Score", "FrameId")]

        async def wait(read: Callable[[], Any], until: Callable[[Any], bool], what: str) -> Any:
            end = time.monotonic() + timeout_s
            while True:
                value = await read()
                if until(value):
                    return value
                if time.monotonic() > end:
                    raise TimeoutError(f"{what} not seen within {timeout_s:.1f} s")

        await wait(nodes["Ready"].read_value, bool, "Ready")
        previous_seq = await nodes["ResultSeq"].read_value()
        previous_frame: int | None = None
        start = time.perf_counter()
        for i in range(cycles):
            t0 = time.perf_counter()
            await nodes["Trigger"].write_value(True)
            dvs = await wait(lambda: client.read_attributes(verdict), _opcua_done(previous_seq),
                             f"Done for cycle {i}")
            report.latencies_ms.append((time.perf_counter() - t0) * 1000.0)
            seq, frame_id = dvs[1].Value.Value, dvs[4].Value.Value
            report.check(seq, frame_id, previous_seq, previous_frame)
            if not dvs[2].StatusCode.is_good():
                report.problems.append(f"cycle {i}: Result status {dvs[2].StatusCode.name}")
            score = dvs[3].Value.Value
            if score_of is not None and score != score_of(frame_id):
                report.problems.append(f"cycle {i}: score {score} does not belong to frame {frame_id}")
            report.seqs.append(seq)
            report.frame_ids.append(frame_id)
            report.results.append(dvs[2].Value.Value)
            report.scores.append(score)
            previous_seq, previous_frame = seq, frame_id
            await client.write_values([nodes["Trigger"], nodes["Ack"]], [False, True])
            await wait(nodes["Done"].read_value, lambda d: not d, "Done dropping after Ack")
            await nodes["Ack"].write_value(False)
            await wait(nodes["Ready"].read_value, bool, "Ready after the cycle")
            report.cycles += 1
        report.wall_s = time.perf_counter() - start
    return report


def opcua_cycles(endpoint: str, node_id: Callable[[str], str], cycles: int, **kwargs: Any) -> CycleReport:
    return asyncio.run(opcua_cycles_async(endpoint, node_id, cycles, **kwargs))
