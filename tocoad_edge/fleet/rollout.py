"""The gateway side of a fleet rollout: listen for commands, fetch, verify, self-test, hot-swap, report.

A command (``{root}/cmd/{line-glob}/{gateway-glob}``, JSON, retained so a gateway that was away catches up):

    {"action": "rollout", "id": "…", "archive_sha256": "…", "model_id": "…"}
    {"action": "rollback", "id": "…"}

Rollout: fetch the archive's chunks (``bundle_transfer``), check its sha256, unpack it safely and check every
file's sha256 (``bundle/archive.py``), open it — checking its Ed25519 signature when the gateway has a public key
(``Detector.open(public_key=…)``) — and run the golden-image self-test beside the serving model
(``runtime/hot_swap.py``); only then swap. Any failure leaves the old model serving. Rollback swaps back to the
bundle served before the last swap (self-tested again). Each command is answered once on
``{root}/{line}/{gateway}/rollout`` (retained): ok or not, the model serving now, and why on failure. Commands
already handled (by id, kept in ``state.json``) and rollouts to the bundle already serving are not repeated.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import threading
from pathlib import Path

from ..errors import TocoadError
from . import status
from .bundle_transfer import fetch_archive
from .mqtt_link import MqttLink
from .topics import GatewayTopics

log = logging.getLogger("tocoad_edge.fleet")

STATE_NAME = "state.json"


class RolloutState:
    """``install_dir/state.json``: the bundle serving, the one before it, and the command ids handled."""

    def __init__(self, install_dir: Path):
        self.path = install_dir / STATE_NAME
        data = json.loads(self.path.read_text(encoding="utf-8")) if self.path.is_file() else {}
        self.current: str | None = data.get("current")
        self.previous: str | None = data.get("previous")
        self.handled: list[str] = data.get("handled", [])
        self.archive_sha256: str | None = data.get("archive_sha256")   # of the archive the current bundle came from

    def save(self) -> None:
        tmp = self.path.with_name(f".{STATE_NAME}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps({"current": self.current, "previous": self.previous,
                                   "archive_sha256": self.archive_sha256, "handled": self.handled[-200:]},
                                  indent=2), encoding="utf-8")
        os.replace(tmp, self.path)


class RolloutAgent:
    def __init__(self, link: MqttLink, topics: GatewayTopics, slot, install_dir: str | Path, *,
                 fetch_timeout_s: float = 120.0):
        self.link, self.topics, self.slot = link, topics, slot
        self.install_dir = Path(install_dir)
        self.install_dir.mkdir(parents=True, exist_ok=True)
        self.fetch_timeout_s = fetch_timeout_s
        self.state = RolloutState(self.install_dir)
        if self.state.current is None:
            self.state.current = str(slot.detector.bundle_dir)
            self.state.save()
        self.reports: list[dict] = []
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="tocoad-rollout", daemon=True)

    def start(self) -> "RolloutAgent":
        self._thread.start()
        self.link.subscribe(self.topics.commands, self._on_command)
        return self

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    # -- paho's thread: only queue (fetching needs that thread free) ----------------------------------------
    def _on_command(self, topic: str, payload: bytes) -> None:
        if not payload or not self.topics.targets(topic):
            return
        try:
            command = json.loads(payload)
            if not isinstance(command, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            self._report({"id": None, "action": None, "ok": False, "error": f"unreadable command on {topic}: {exc}"})
            return
        self._queue.put(command)

    # -- the worker -------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while (command := self._queue.get()) is not None:
            cid, action = command.get("id"), command.get("action")
            if cid in self.state.handled:
                continue
            try:
                if action == "rollout":
                    report = self._rollout(command)
                elif action == "rollback":
                    report = self._rollback()
                else:
                    report = {"ok": False, "error": f"unknown action {action!r} (expected 'rollout' or 'rollback')"}
            except TocoadError as exc:
                log.error("%s %s refused; still serving %s: %s", action, cid, self.slot.model_id, exc)
                report = {"ok": False, "error": str(exc)}
            except Exception as exc:   # noqa: BLE001 — report it; the old model keeps serving
                log.exception("%s %s failed", action, cid)
                report = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            self.state.handled.append(cid)
            self.state.save()
            self._report({"id": cid, "action": action, **report})

    def _rollout(self, command: dict) -> dict:
        sha = str(command.get("archive_sha256", ""))
        if len(sha) != 64 or not all(c in "0123456789abcdef" for c in sha):
            return {"ok": False, "error": f"rollout command without a valid archive_sha256 (got {sha!r})"}
        if sha == self.state.archive_sha256:
            return {"ok": True, "unchanged": True}
        incoming = self.install_dir / f".incoming-{sha[:16]}.tar.gz"
        try:
            fetch_archive(self.link, self.topics.root, sha, incoming, timeout_s=self.fetch_timeout_s)
            swap = self.slot.swap_archive(incoming, self.install_dir)   # unpack, verify, open, self-test, swap
        finally:
            incoming.unlink(missing_ok=True)
        self.state.archive_sha256 = sha
        self._served(str(swap.bundle_dir))
        return {"ok": True, "previous_model_id": swap.old_model_id}

    def _rollback(self) -> dict:
        previous = self.state.previous
        if not previous or not Path(previous).is_dir():
            return {"ok": False, "error": "no previous bundle to roll back to on this gateway"}
        swap = self.slot.swap(previous)
        self.state.archive_sha256 = None
        self._served(previous)
        return {"ok": True, "previous_model_id": swap.old_model_id}

    def _served(self, bundle_dir: str) -> None:
        """Record the swap; keep the bundle before it for a rollback, delete older installed ones."""
        self.state.previous, self.state.current = self.state.current, bundle_dir
        self.state.save()
        keep = {Path(p).resolve() for p in (self.state.current, self.state.previous) if p}
        for old in self.install_dir.glob("bundle-*"):
            if old.resolve() not in keep:
                shutil.rmtree(old, ignore_errors=True)

    def _report(self, report: dict) -> None:
        model_id, sha = status.model_identity(self.slot)
        full = {**report, "gateway": f"{self.topics.line}/{self.topics.gateway}", "model_id": model_id,
                "bundle_sha256": sha}
        self.reports.append(full)
        self.link.publish(self.topics.rollout, json.dumps(full).encode(), retain=True)
        self.link.set_birth(self.topics.status, status.online(model_id, sha))
