"""Fleet rollout with a real Mosquitto and three real gateway processes (tocoad-fleet gateway): two take the new
bundle, the third gets a corrupted one, refuses it, keeps serving the old model and says why; then a rollback."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import yaml

from fleet_helpers import broker, collector, poll, retained  # noqa: F401
from reliability_fixtures import corrupt, rewrite_manifest
from tocoad_edge.bundle.manifest import read_manifest
from tocoad_edge.errors import BundleError
from tocoad_edge.fleet import cli
from tocoad_edge.fleet.bundle_transfer import pack_bundle

ROOT = Path(__file__).resolve().parents[2]
GATEWAYS = ("gw-a", "gw-b", "gw-c")


def _gateway_config(tmp_path: Path, name: str, bundle: Path, port: int) -> Path:
    cfg = {"install_dir": str(tmp_path / name / "bundles"),
           "source": {"uri": "testsrc://?width=64&height=64", "fps": 4.0},
           "detector": {"bundle": str(bundle), "search": "exact", "threads": 1},
           "run": {"duration_s": 300.0, "log_every_s": 0.0},
           "mqtt": {"line": "line-1", "gateway": name, "spool": str(tmp_path / name / "spool.sqlite"),
                    "broker": {"port": port, "reconnect_initial_s": 0.2, "reconnect_max_s": 1.0}}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def _fleet(capsys, *argv) -> tuple[int, dict]:
    capsys.readouterr()
    rc = cli.main(list(argv))
    return rc, json.loads(capsys.readouterr().out)


def _since(collector, gateway: str, start: int) -> list[dict]:
    return [v for v in collector.snapshot()[start:] if v["_topic"].split("/")[2] == gateway]


@pytest.fixture
def fleet(tmp_path, broker, tiny_bundle):
    procs = {}
    for name in GATEWAYS:
        config = _gateway_config(tmp_path, name, tiny_bundle, broker.port)
        procs[name] = subprocess.Popen([sys.executable, "-m", "tocoad_edge.fleet.cli", "gateway", "--config",
                                        str(config)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    yield procs
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs.values():
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def test_rollout_to_three_gateways_one_corrupted(tmp_path, broker, collector, fleet, tiny_bundle, capsys):
    old_id = read_manifest(tiny_bundle).model_id
    new = tmp_path / "new"
    shutil.copytree(tiny_bundle, new)
    rewrite_manifest(new, lambda d: d.update(model_id="tiny-v2"))
    damaged = tmp_path / "damaged"
    shutil.copytree(new, damaged)
    corrupt(damaged / "coreset.npy", "bitflip")                      # the manifest's sha256 no longer matches
    with pytest.raises(BundleError, match="sha256"):
        pack_bundle(damaged, tmp_path / "refused.tar.gz")               # the publisher's own check refuses it
    damaged_archive = pack_bundle(damaged, tmp_path / "damaged.tar.gz", verify=False)

    for name in GATEWAYS:
        status = poll(partial(retained, broker, f"tocoad/line-1/{name}/status"),
                      lambda s: bool(s) and s["state"] == "online", limit_s=90)
        assert status["model_id"] == old_id, (name, status, fleet[name].stderr.read() if fleet[name].poll() else "")
    url = f"mqtt://127.0.0.1:{broker.port}"

    rc, out = _fleet(capsys, "publish", str(new), "--broker", url, "--target", "line-1/gw-[ab]", "--expect", "2",
                     "--wait", "120", "--chunk-kib", "128")
    assert rc == 0, out
    assert [(r["gateway"], r["ok"], r["model_id"], r["previous_model_id"]) for r in out["reports"]] == [
        ("line-1/gw-a", True, "tiny-v2", old_id), ("line-1/gw-b", True, "tiny-v2", old_id)]
    assert out["bundle"]["chunks"] > 1 and out["bundle"]["chunk_size"] == 128 * 1024

    rc, out = _fleet(capsys, "publish", str(damaged_archive), "--no-check", "--broker", url, "--target",
                     "line-1/gw-c", "--expect", "1", "--wait", "120")
    assert rc == 1
    (report,) = out["reports"]
    assert report["gateway"] == "line-1/gw-c" and report["ok"] is False
    assert "coreset.npy fails its sha256 check" in report["error"] and report["model_id"] == old_id

    # every gateway still serves: new verdicts come from the model each one reported
    mark = len(collector.snapshot())
    for name, model in (("gw-a", "tiny-v2"), ("gw-b", "tiny-v2"), ("gw-c", old_id)):
        fresh = poll(partial(_since, collector, name, mark), lambda v: len(v) >= 3, limit_s=60)
        assert len(fresh) >= 3 and {v["model_id"] for v in fresh} == {model}, name
    rc, out = _fleet(capsys, "status", "--broker", url, "--wait", "1")
    gws = out["gateways"]
    assert {k: v["status"]["model_id"] for k, v in gws.items()} == {
        "line-1/gw-a": "tiny-v2", "line-1/gw-b": "tiny-v2", "line-1/gw-c": old_id}
    assert gws["line-1/gw-c"]["rollout"]["ok"] is False

    rc, out = _fleet(capsys, "rollback", "--broker", url, "--target", "line-1/gw-a", "--expect", "1", "--wait", "60")
    assert rc == 0 and [(r["gateway"], r["model_id"]) for r in out["reports"]] == [("line-1/gw-a", old_id)]
    assert retained(broker, "tocoad/line-1/gw-a/status")["model_id"] == old_id

    for name, p in fleet.items():
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0, (name, p.stderr.read()[-2000:])
        assert retained(broker, f"tocoad/line-1/{name}/status")["state"] == "offline"
