"""``tocoad-plc``: a camera + a bundle + one PLC transport (Modbus TCP or OPC UA) from a YAML config.

    tocoad-plc gateway.yaml                # until Ctrl-C / SIGTERM
    tocoad-plc gateway.yaml --duration 60  # stop after 60 s
    tocoad-plc --print-config              # a complete config with every default
    kill -HUP <pid>                        # take the bundle's new decision (tocoad-threshold) without a restart

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

from ..errors import TocoadError
from ..runtime.options import DetectorOptions
from ..decision_reload import reload_decision_on_sighup
from ..shutdown import stop_on_signals
from ..typed_config import to_dict
from .config import GatewayConfig, SourceConfig, gateway_bundle, load_gateway_config
from .gateway import Gateway, bundle_hash
from .ports import ClosableSource

log = logging.getLogger("tocoad_edge.plc.app")

EXAMPLE = GatewayConfig(source=SourceConfig(uri="0"), detector=DetectorOptions(bundle=Path("bundle")))


def open_source(cfg: SourceConfig) -> ClosableSource:
    """The configured camera, started; ``simulated``: flat synthetic frames (commissioning only)."""
    if cfg.uri == "simulated":
        from .simulation import SimulatedCamera

        log.warning("source.uri is 'simulated': flat synthetic frames, the verdicts are NOT an inspection")
        return SimulatedCamera(shape=(240, 320, 3), frame_interval_s=0.01)
    from ..stream import open_source as stream_open_source

    return stream_open_source(cfg.uri, dict(cfg.options) or None)     # starts capturing


def build(cfg: GatewayConfig) -> tuple[Gateway, Any, Any]:
    """(gateway, transport, detector), not started. Raises TocoadError with a fix on any bad input."""
    from ..runtime import Detector

    detector = Detector.from_options(cfg.detector)
    try:
        source = open_source(cfg.source)
    except BaseException:
        detector.close()
        raise
    gateway = Gateway(source, detector, cfg.handshake, bundle_hash=bundle_hash(gateway_bundle(cfg)))
    banded = detector.manifest.scoring.review_threshold is not None
    if cfg.transport == "modbus" and cfg.modbus.map_version == 1 and banded:
        log.warning("the bundle has a review band, and Modbus map version 1 reports REVIEW parts as NG (2); "
                    "set modbus.map_version: 2 for result 4 = REVIEW (docs/plc.md)")
    if cfg.transport == "modbus":
        from .modbus_server import ModbusServer

        transport: Any = ModbusServer(gateway.handshake, cfg.modbus)
    else:
        from .opcua_server import OpcUaServer

        transport = OpcUaServer(gateway.handshake, cfg.opcua)
    return gateway, transport, detector


def run(cfg: GatewayConfig, duration_s: float | None, stop: threading.Event | None = None) -> None:
    stop = stop or threading.Event()
    gateway, transport, detector = build(cfg)

    def reloaded(_record: dict[str, Any]) -> None:     # the manifest changed: the PLC sees the new bundle hash
        gateway.handshake.set_identity(detector.model_id, bundle_hash(gateway_bundle(cfg)))

    try:
        with gateway, transport, reload_decision_on_sighup(detector, reloaded):
            where = transport.endpoint if cfg.transport == "opcua" else f"{cfg.modbus.host}:{transport.port}"
            snap = gateway.snapshot()
            log.info("PLC gateway up: %s %s, mode %s, deadline %.3f s, model %s, bundle %s", cfg.transport, where,
                     cfg.handshake.mode, cfg.handshake.deadline_s, snap.model_id, snap.bundle_hash[:16])
            stop.wait(duration_s)
            s = gateway.snapshot()
            log.info("stopping: %d triggers, %d results, %d ignored triggers, %d rejected writes, %d late results",
                     s.trigger_count, s.result_seq, s.triggers_ignored, s.writes_rejected, s.late_results)
    finally:
        detector.close()
        if isinstance(gateway.source, ClosableSource):   # always, for build's sources (open_source)
            gateway.source.close()


def build_parser(prog: str = "tocoad-plc") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0].replace("``tocoad-plc``: ", ""),
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1].replace("tocoad-plc", prog))
    parser.add_argument("config", nargs="?", help="gateway YAML file (see docs/plc.md)")
    parser.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    parser.add_argument("--print-config", action="store_true",
                        help="print the config (CONFIG merged over the defaults, or an example) and exit")
    return parser


def main(argv: list[str] | None = None, prog: str = "tocoad-plc") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        cfg = load_gateway_config(args.config) if args.config else None
        if args.print_config:
            import yaml

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
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0
