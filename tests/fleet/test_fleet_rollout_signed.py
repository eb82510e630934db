"""A gateway that trusts one Ed25519 key refuses a rolled-out bundle that is not signed by it, keeps serving, and
takes the signed one; the rollout agent in-process on a real Mosquitto, published through tocoad-fleet."""
from __future__ import annotations

import json
import shutil

from fleet_helpers import broker, poll  # noqa: F401
from reliability_fixtures import rewrite_manifest
from tocoad_edge.bundle.signature import generate_key_pair, sign_bundle
from tocoad_edge.fleet import cli
from tocoad_edge.fleet.config import broker_from_url
from tocoad_edge.fleet.mqtt_link import MqttLink
from tocoad_edge.fleet.rollout import RolloutAgent
from tocoad_edge.fleet.topics import GatewayTopics
from tocoad_edge.runtime.hot_swap import HotSwapDetector


def test_unsigned_bundle_is_refused_signed_one_is_taken(tmp_path, broker, tiny_bundle, capsys):
    private, public = generate_key_pair()
    first, new = tmp_path / "first", tmp_path / "new"
    shutil.copytree(tiny_bundle, first)
    sign_bundle(first, private)
    shutil.copytree(tiny_bundle, new)
    rewrite_manifest(new, lambda d: d.update(model_id="signed-v2"))
    slot = HotSwapDetector.open(first, search="exact", threads=1, public_key=public)
    topics = GatewayTopics("tocoad", "line-5", "gw-1")
    link = MqttLink(broker_from_url(broker.url), "gw-under-test")
    agent = RolloutAgent(link, topics, slot, tmp_path / "install").start()
    link.start()
    url = broker.url
    try:
        assert link.wait_connected(10)
        capsys.readouterr()
        assert cli.main(["publish", str(new), "--broker", url, "--target", "line-5/*", "--expect", "1"]) == 1
        (report,) = json.loads(capsys.readouterr().out)["reports"]
        assert report["ok"] is False and "not signed" in report["error"] and slot.model_id != "signed-v2"
        assert report["model_id"] == slot.model_id
        sign_bundle(new, private)
        assert cli.main(["publish", str(new), "--broker", url, "--target", "line-5/*", "--expect", "1"]) == 0
        (report,) = json.loads(capsys.readouterr().out)["reports"]
        assert report["ok"] is True and slot.model_id == "signed-v2" == report["model_id"]
        state = json.loads((tmp_path / "install" / "state.json").read_text())
        assert state["previous"] == str(first) and len(state["handled"]) == 2
    finally:
        agent.stop()
        link.stop()
        slot.close()
