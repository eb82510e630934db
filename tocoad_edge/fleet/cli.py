"""``tocoad-fleet``: publish a bundle to gateways, roll back, read the fleet's status, run a gateway.

    tocoad-fleet publish BUNDLE --broker mqtt://broker:1883 --target 'line-3/*' [--wait 120 --expect 4]
    tocoad-fleet rollback --broker … --target line-3/gw-2 [--wait 60 --expect 1]
    tocoad-fleet status --broker …                     # retained status + last rollout report of every gateway
    tocoad-fleet purge ARCHIVE_SHA256 --broker …       # clear a published bundle's chunks from the broker
    tocoad-fleet gateway --config gateway.yaml         # a gateway: camera → detector → MQTT, takes rollouts

Prints JSON. Exit status: 0 ok, 1 a gateway reported a failure (or fewer reports than --expect), 2 bad input.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from ..errors import ConfigError, TocoadError
from . import topics as topic_tree
from .config import broker_from_url

log = logging.getLogger("tocoad_edge.fleet")


def _link(args):
    from .mqtt_link import MqttLink

    env = "TOCOAD_MQTT_PASSWORD" if os.environ.get("TOCOAD_MQTT_PASSWORD") is not None else None
    broker = broker_from_url(args.broker, username=args.username, ca_file=args.ca_file, password_env=env)
    link = MqttLink(broker, f"tocoad-fleet-{uuid.uuid4().hex[:8]}").start()
    if not link.wait_connected(args.connect_timeout):
        link.stop()
        raise ConfigError(f"cannot reach the broker at {args.broker}", got=link.last_error or "no connection",
                          fix="check --broker, the credentials (password: env TOCOAD_MQTT_PASSWORD) and TLS")
    return link


def _archive_of(bundle: Path, workdir: Path, check: bool) -> tuple[Path, str | None]:
    """(archive to send, model id). A folder is verified and packed; an archive is unpacked and verified."""
    from ..bundle.archive import unpack_bundle_archive
    from ..bundle.manifest import read_manifest
    from .bundle_transfer import pack_bundle

    if bundle.is_dir():
        return pack_bundle(bundle, workdir / "bundle.tar.gz", verify=check), read_manifest(bundle).model_id
    if not bundle.is_file():
        raise ConfigError(f"bundle not found: {bundle}", fix="give a bundle folder or a .tar.gz/.zip archive of one")
    if not check:
        return bundle, None
    return bundle, read_manifest(unpack_bundle_archive(bundle, workdir / "check")).model_id


def _send_command(link, args, command: dict) -> dict:
    """Publish ``command`` (retained) to the target and gather the gateways' reports for it."""
    reports: list[dict] = []
    lock = threading.Lock()

    def on_report(_topic: str, payload: bytes) -> None:
        report = json.loads(payload) if payload else {}
        if report.get("id") == command["id"]:
            with lock:
                reports.append(report)

    link.subscribe(f"{args.root}/+/+/rollout", on_report)
    link.publish(topic_tree.command_topic(args.root, args.target), json.dumps(command).encode(),
                 retain=True).wait_for_publish(30)
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline and (args.expect is None or len(reports) < args.expect):
        time.sleep(0.1)
    with lock:
        reports = sorted(reports, key=lambda r: r["gateway"])
    ok = all(r.get("ok") for r in reports) and (args.expect is None or len(reports) >= args.expect)
    return {"command": command, "reports": reports, "ok": ok}


def cmd_publish(args) -> dict:
    from .bundle_transfer import DEFAULT_CHUNK, publish_archive

    link = _link(args)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            archive, model_id = _archive_of(Path(args.bundle), Path(tmp), not args.no_check)
            meta = publish_archive(link, args.root, archive, model_id, chunk_size=int(args.chunk_kib * 1024)
                                   if args.chunk_kib else DEFAULT_CHUNK)
        command = {"action": "rollout", "id": uuid.uuid4().hex, "archive_sha256": meta["sha256"],
                   "model_id": model_id, "target": args.target}
        return {**_send_command(link, args, command), "bundle": meta}
    finally:
        link.stop()


def cmd_rollback(args) -> dict:
    link = _link(args)
    try:
        return _send_command(link, args, {"action": "rollback", "id": uuid.uuid4().hex, "target": args.target})
    finally:
        link.stop()


def cmd_status(args) -> dict:
    link = _link(args)
    seen: dict[str, dict] = {}

    def on_message(topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if payload:
            seen.setdefault(f"{parts[1]}/{parts[2]}", {})[parts[3]] = json.loads(payload)

    try:
        link.subscribe(f"{args.root}/+/+/status", on_message)
        link.subscribe(f"{args.root}/+/+/rollout", on_message)
        time.sleep(args.wait)            # retained messages arrive at once; this bounds the wait for them
    finally:
        link.stop()
    return {"gateways": dict(sorted(seen.items())), "ok": True}


def cmd_purge(args) -> dict:
    from .bundle_transfer import purge_archive

    link = _link(args)
    meta: dict = {}
    got = threading.Event()
    try:
        link.subscribe(topic_tree.bundle_meta(args.root, args.sha256),
                       lambda _t, p: (meta.update(json.loads(p)) if p else None, got.set()))
        if not got.wait(args.wait) or not meta:
            raise ConfigError(f"no bundle {args.sha256} on the broker", fix="see 'tocoad-fleet publish' output")
        purge_archive(link, args.root, meta)
    finally:
        link.stop()
    return {"purged": meta, "ok": True}


def cmd_gateway(args) -> dict:
    from ..shutdown import stop_on_signals
    from ..stream.app import report_dict
    from ..typed_config import from_dict, load_yaml
    from .gateway import GatewayConfig, run_gateway

    cfg = from_dict(GatewayConfig, load_yaml(args.config))
    with stop_on_signals() as stop:
        report = run_gateway(cfg, stop)
    return {**report_dict(report), "ok": report.end_reason != "source_error"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tocoad-fleet", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog="See docs/fleet.md.")
    p.add_argument("--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    def broker_flags(sp):
        sp.add_argument("--broker", required=True, help="mqtt://[user@]host[:port] or mqtts://… (TLS); the "
                                                        "password from env TOCOAD_MQTT_PASSWORD")
        sp.add_argument("--username", help="broker user (overrides the one in --broker)")
        sp.add_argument("--ca-file", help="CA bundle for the broker's TLS certificate")
        sp.add_argument("--root", default="tocoad", help="topic root (default: tocoad)")
        sp.add_argument("--connect-timeout", type=float, default=10.0)

    def command_flags(sp, wait):
        sp.add_argument("--target", required=True, help="LINE/GATEWAY, globs allowed: 'line-3/*', 'line-*/gw-1'")
        sp.add_argument("--wait", type=float, default=wait, help="seconds to wait for the gateways' reports")
        sp.add_argument("--expect", type=int, help="stop waiting after this many reports")

    sp = sub.add_parser("publish", help="send a bundle (folder or archive) to the target gateways")
    sp.add_argument("bundle")
    broker_flags(sp)
    command_flags(sp, 120.0)
    sp.add_argument("--chunk-kib", type=float, help="chunk size in KiB (default 256)")
    sp.add_argument("--no-check", action="store_true", help="send without checking the bundle here first (the "
                                                             "gateways check it anyway)")
    sp.set_defaults(func=cmd_publish)
    sp = sub.add_parser("rollback", help="return the target gateways to the bundle they served before")
    broker_flags(sp)
    command_flags(sp, 60.0)
    sp.set_defaults(func=cmd_rollback)
    sp = sub.add_parser("status", help="retained status and last rollout report of every gateway")
    broker_flags(sp)
    sp.add_argument("--wait", type=float, default=2.0)
    sp.set_defaults(func=cmd_status)
    sp = sub.add_parser("purge", help="clear a published bundle from the broker")
    sp.add_argument("sha256")
    broker_flags(sp)
    sp.add_argument("--wait", type=float, default=5.0)
    sp.set_defaults(func=cmd_purge)
    sp = sub.add_parser("gateway", help="run a gateway from a YAML config (see docs/fleet.md)")
    sp.add_argument("--config", required=True)
    sp.set_defaults(func=cmd_gateway)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        out = args.func(args)
    except TocoadError as exc:
        print(f"tocoad-fleet: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=2))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
