"""``MqttSink``: a stream sink (``write(result)`` / ``close()``) that sends every verdict to the plant's broker.

``write`` only stores the verdict in the on-disk spool (a local SQLite commit; plus a JPEG encode for NG and
REVIEW frames when images are on) and wakes the forwarder thread; the network is never touched on the inspection thread.
"""
from __future__ import annotations

import logging

from ..stream.sinks import Sink
from . import status
from .config import MqttSinkConfig
from .forwarder import Forwarder
from .mqtt_link import MqttLink
from .spool import Spool
from .verdict import encode_ng_image, verdict_record

log = logging.getLogger("tocoad_edge.fleet")


class MqttSink(Sink):
    """``model``: the ``Detector`` / ``HotSwapDetector`` serving, for the model id and bundle hash in each verdict
    and in the retained status. ``link``: share the gateway's MQTT connection (default: open one).
    Several cameras (``stream/multicam.py``): each verdict goes to the topic of the result's ``camera`` (else
    ``cfg.camera``) with that camera's own ``seq``; ``camera_models`` names the model of each camera whose model
    differs from ``model``."""

    def __init__(self, cfg: MqttSinkConfig, model=None, *, link: MqttLink | None = None,
                 camera_models: dict | None = None):
        self.cfg = cfg
        self.topics = cfg.topics
        self.spool = Spool(cfg.spool, cfg.limits())
        self._identity = status.IdentityCache(model)
        self._camera_identity = {cam: status.IdentityCache(m) for cam, m in (camera_models or {}).items()}
        self._own_link = link is None
        self.link = link or MqttLink(cfg.broker, f"tocoad-{cfg.line}-{cfg.gateway}",
                                     will=(self.topics.status, status.offline("connection lost")),
                                     max_inflight=cfg.window)
        self._announce()
        if self._own_link:
            self.link.start()
        self.forwarder = Forwarder(self.spool, self.link, self.topics, window=cfg.window).start()
        self.images_too_large = 0
        self._final: dict[str, int] | None = None

    def _announce(self) -> tuple[str | None, str | None]:
        (model_id, sha), changed = self._identity.get()
        if changed:
            self.link.set_birth(self.topics.status, status.online(model_id, sha))
        return model_id, sha

    def write(self, result) -> None:
        model_id, sha = self._announce()
        camera = getattr(result, "camera", None) or self.cfg.camera
        if camera in self._camera_identity:
            model_id, sha = self._camera_identity[camera].get()[0]
        image = None
        if self.cfg.ng_images and result.prediction.decision in ("NG", "REVIEW"):   # a reviewer needs the picture
            image = encode_ng_image(result.frame.image, int(self.cfg.image_max_kb * 1024))
            self.images_too_large += image is None
        record = verdict_record(result, camera, model_id, sha, has_image=image is not None)
        self.spool.put(camera, record, image)
        self.forwarder.wake()

    def counters(self) -> dict[str, int]:
        """Spool counters (persisted: they add up over restarts) and this process's link and forwarder counts."""
        if self._final is not None:
            return dict(self._final)
        return {**self.spool.counters(), "published": self.forwarder.published, "replays": self.forwarder.replays,
                "connects": self.link.connects, "images_too_large": self.images_too_large}

    def close(self) -> None:
        """Give the forwarder ``drain_s`` to empty the spool; what is left is sent at the next start."""
        try:
            if not self.forwarder.drain(self.cfg.drain_s):
                log.warning("MQTT sink closing with %d verdicts still spooled in %s (sent at the next start)",
                            len(self.spool), self.spool.path)
            self.forwarder.stop()
            if self._own_link:
                self.link.stop(goodbye=(self.topics.status, status.offline("stopped")))
        finally:
            self._final = self.counters()
            self.spool.close()
