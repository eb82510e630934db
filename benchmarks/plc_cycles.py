#!/usr/bin/env python3
"""Trigger-to-result latency of the PLC handshake over Modbus TCP and OPC UA, on loopback.

    python benchmarks/plc_cycles.py                       # 1000 cycles per transport, simulated camera/model
    python benchmarks/plc_cycles.py --cycles 5000 --transport modbus
    python benchmarks/plc_cycles.py --bundle bundle/ --images folder/   # the real Detector on real images
    python benchmarks/plc_cycles.py --security both       # each transport without and with its security

With ``--security on``, Modbus runs with an allow-list and a unit id, OPC UA with SignAndEncrypt
(Basic256Sha256), a trusted client certificate and an operator login (a throw-away PKI in a temporary folder).

The client plays the PLC (Trigger → Done with the next result_seq → Ack → Ready) and checks every
result: none lost, duplicated or out of order. Prints p50 / p99 / max as the client sees them, and the
gateway's own trigger → publication latency. The client shares the machine (and with asyncua, Python's
GIL) with the gateway, so these are upper bounds of what a PLC on the network adds to inference time.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tocoad_edge.credentials import add_user  # noqa: E402
from tocoad_edge.plc import (Gateway, HandshakeConfig, ModbusConfig, ModbusServer, OpcUaConfig,  # noqa: E402
                             OpcUaSecurityConfig, OpcUaServer)
from tocoad_edge.plc.cycle_check import CycleReport, modbus_cycles, opcua_cycles  # noqa: E402
from tocoad_edge.plc.simulation import FrameMeanDetector, SimulatedCamera, expected_score  # noqa: E402
from tocoad_edge.stream import Frame, ReadResult, ReadStatus  # noqa: E402


class FolderCamera:
    """Serves the images of a folder in a loop (for --images)."""

    def __init__(self, folder: Path):
        from tocoad_edge.data import read_image

        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp"})
        if not paths:
            raise SystemExit(f"no images in {folder}")
        self.images = [read_image(p) for p in paths]
        self.i = 0

    def read(self, timeout: float) -> ReadResult:
        self.i += 1
        image = self.images[self.i % len(self.images)]
        return ReadResult(ReadStatus.OK, Frame(self.i, time.time(), time.monotonic(), image))


def throwaway_pki(folder: Path) -> tuple[OpcUaSecurityConfig, Any]:
    """A server pair, a trusted client pair and an operator: (server security config, client secure())."""
    from tocoad_edge.plc.certs import make_self_signed
    from tocoad_edge.plc.opcua_client import client_security

    make_self_signed(folder / "server_cert.der", folder / "server_key.pem", hostnames=("127.0.0.1",))
    make_self_signed(folder / "trusted" / "plc_cert.der", folder / "plc_key.pem", client=True,
                     application_uri="urn:tocoad-edge:plc:bench-client")
    add_user(folder / "users.txt", "plc", "operator", "bench-operator-pw")
    config = OpcUaSecurityConfig(certificate=folder / "server_cert.der", private_key=folder / "server_key.pem",
                                 trusted_clients=folder / "trusted", users=folder / "users.txt")
    secure = client_security(folder / "trusted" / "plc_cert.der", folder / "plc_key.pem", folder / "server_cert.der",
                             user="plc", password="bench-operator-pw")
    return config, secure


def bench(transport: str, cycles: int, source: Any, detector: Any, simulated: bool, deadline_s: float,
          secured: bool = False) -> dict:
    gateway = Gateway(source, detector, HandshakeConfig(deadline_s=deadline_s))
    gateway_latency: list[float] = []
    gateway.handshake.subscribe(lambda s: gateway_latency.append(s.latency_ms) if s.done else None)
    score_of = expected_score if simulated else None
    with gateway, tempfile.TemporaryDirectory() as tmp:
        if transport == "modbus":
            config = (ModbusConfig(port=0, allowed_clients=("127.0.0.1",), unit_id=1) if secured
                      else ModbusConfig(port=0))
            with ModbusServer(gateway.handshake, config) as server:
                report: CycleReport = modbus_cycles("127.0.0.1", server.port, cycles, score_of=score_of)
        else:
            security, secure = throwaway_pki(Path(tmp)) if secured else (OpcUaSecurityConfig(mode="none"), None)
            with OpcUaServer(gateway.handshake, OpcUaConfig(port=0, security=security)) as server:
                report = opcua_cycles(server.endpoint, server.node_id, cycles, score_of=score_of, secure=secure)
    inside = sorted(set(gateway_latency))
    label = ("allow-list + unit id" if transport == "modbus" else "SignAndEncrypt") if secured else "none"
    return {"transport": transport, "security": label, "cycles": report.cycles, "problems": report.problems[:10],
            "n_problems": len(report.problems), "wall_s": round(report.wall_s, 2),
            "client_p50_ms": round(report.percentile(50), 3), "client_p99_ms": round(report.percentile(99), 3),
            "client_max_ms": round(max(report.latencies_ms), 3),
            "gateway_median_ms": round(statistics.median(inside), 3) if inside else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--transport", choices=["modbus", "opcua", "both"], default="both")
    parser.add_argument("--bundle", type=Path, help="use the real Detector on this bundle")
    parser.add_argument("--images", type=Path, help="with --bundle: a folder of images to serve as the camera")
    parser.add_argument("--security", choices=["off", "on", "both"], default="off",
                        help="run without the transport's security, with it, or both (default: off)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per transport")
    args = parser.parse_args(argv)
    if args.cycles < 1:
        parser.error("--cycles must be >= 1")
    transports = ["modbus", "opcua"] if args.transport == "both" else [args.transport]
    failed = False
    securities = {"off": [False], "on": [True], "both": [False, True]}[args.security]
    runs = [(t, sec) for t in transports for sec in securities]
    for transport, secured in runs:
        if args.bundle:
            from tocoad_edge.runtime import Detector

            if not args.images:
                parser.error("--bundle needs --images (a folder of frames to serve)")
            detector = Detector.open(args.bundle)
            source, simulated, deadline = FolderCamera(args.images), False, 10.0
        else:
            detector, source, simulated, deadline = FrameMeanDetector(), SimulatedCamera(), True, 1.0
        row = bench(transport, args.cycles, source, detector, simulated, deadline, secured)
        failed |= row["n_problems"] > 0
        if args.json:
            print(json.dumps(row))
        else:
            print(f"{row['transport']:7s} [{row['security']}] {row['cycles']} cycles in {row['wall_s']} s: "
                  f"trigger→result p50 {row['client_p50_ms']} ms, p99 {row['client_p99_ms']} ms, "
                  f"max {row['client_max_ms']} ms (gateway-side median {row['gateway_median_ms']} ms); "
                  f"lost/duplicated/out-of-order: {row['n_problems']}")
    return 1 if failed else 0


if __name__ == "__main__":
    from tocoad_edge.errors import TocoadError

    try:
        sys.exit(main())
    except TocoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
