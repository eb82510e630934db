#!/usr/bin/env python3
"""Run a camera + a bundle + one PLC transport (Modbus TCP or OPC UA) from a YAML config.

    python examples/plc_gateway.py gateway.yaml                # until Ctrl-C / SIGTERM
    python examples/plc_gateway.py gateway.yaml --duration 60  # stop after 60 s
    python examples/plc_gateway.py --print-config              # a complete config with every default

The YAML is read with safe_load into strict dataclasses (tocoad_edge.plc.config): unknown keys, wrong
types and out-of-range values stop the program with what was expected, what was got and the fix.
``source.uri: simulated`` uses a simulated camera (flat frames) to commission the PLC program before a
camera is mounted: its verdicts are not an inspection. See docs/plc.md for the register map / node set.
"""
from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path
from typing import Any

import yaml

from tocoad_edge.errors import ResourceError, TocoadError
from tocoad_edge.plc import (DetectorConfig, Gateway, GatewayConfig, ModbusServer, OpcUaServer, SourceConfig,
                             load_gateway_config)
from tocoad_edge.plc.gateway import bundle_hash
from tocoad_edge.shutdown import stop_on_signals
from tocoad_edge.typed_config import to_dict

log = logging.getLogger("plc_gateway")

EXAMPLE = GatewayConfig(source=SourceConfig(uri="0"), detector=DetectorConfig(bundle=Path("bundle")))


def open_source(cfg: SourceConfig) -> Any:
    if cfg.uri == "simulated":
        from tocoad_edge.plc.simulation import SimulatedCamera

        log.warning("source.uri is 'simulated': flat synthetic frames, the verdicts are NOT an inspection")
        return SimulatedCamera(shape=(240, 320, 3), frame_interval_s=0.01)
    try:
        from tocoad_edge.stream import open_source as stream_open_source
    except ImportError as exc:
        raise ResourceError("camera sources (tocoad_edge.stream) are not available in this installation",
                            got=f"{type(exc).__name__}: {exc}",
                            fix="update tocoad-edge, or set source.uri: simulated to commission the PLC side") from None
    return stream_open_source(cfg.uri, dict(cfg.options) or None)     # starts capturing


def build(cfg: GatewayConfig) -> tuple[Gateway, Any, Any]:
    """(gateway, transport, detector), not started. Raises TocoadError with a fix on any bad input."""
    from tocoad_edge.runtime import Detector

    detector = Detector.open(cfg.detector.bundle, backend=cfg.detector.backend, precision=cfg.detector.precision)
    try:
        source = open_source(cfg.source)
    except BaseException:
        detector.close()
        raise
    gateway = Gateway(source, detector, cfg.handshake, bundle_hash=bundle_hash(cfg.detector.bundle))
    if cfg.transport == "modbus":
        transport: Any = ModbusServer(gateway.handshake, cfg.modbus)
    else:
        transport = OpcUaServer(gateway.handshake, cfg.opcua)
    return gateway, transport, detector


def run(cfg: GatewayConfig, duration_s: float | None, stop: threading.Event | None = None) -> None:
    stop = stop or threading.Event()
    gateway, transport, detector = build(cfg)
    try:
        with gateway, transport:
            where = transport.endpoint if cfg.transport == "opcua" else f"{cfg.modbus.host}:{transport.port}"
            snap = gateway.snapshot()
            log.info("PLC gateway up: %s %s, mode %s, deadline %.3f s, model %s, bundle %s", cfg.transport, where,
                     cfg.handshake.mode, cfg.handshake.deadline_s, snap.model_id, snap.bundle_hash[:16])
            stop.wait(duration_s)
            s = gateway.snapshot()
            log.info("stopping: %d triggers, %d results, %d ignored triggers, %d rejected writes, %d late results",
                     s.trigger_count, s.result_seq, s.triggers_ignored, s.writes_rejected, s.late_results)
    finally:
        close = getattr(detector, "close", None)
        if close is not None:
            close()
        release = getattr(gateway.source, "close", None) or getattr(gateway.source, "release", None)
        if release is not None:
            release()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("config", nargs="?", help="gateway YAML file (see docs/plc.md)")
    parser.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    parser.add_argument("--print-config", action="store_true",
                        help="print the config (CONFIG merged over the defaults, or an example) and exit")
    args = parser.parse_args(argv)
    try:
        cfg = load_gateway_config(args.config) if args.config else None
        if args.print_config:
            print(yaml.safe_dump(to_dict(cfg or EXAMPLE), sort_keys=False), end="")
            return 0
        if cfg is None:
            parser.error("give a CONFIG file (or --print-config for an example)")
        if args.duration is not None and not args.duration > 0:
            parser.error(f"--duration must be > 0 seconds, got {args.duration}")
        logging.basicConfig(level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        with stop_on_signals() as stop:
            run(cfg, args.duration, stop)
    except TocoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
