"""``tocoad-stream`` (and ``examples/camera_stream.py``): flags or a YAML file → detector,
source, sinks → ``run_stream``. Every flag maps onto one key of ``StreamAppConfig`` (same names, ``-`` for ``_``)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import threading
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError, TocoadError
from ..fleet.config import MqttSinkConfig
from ..fleet.topics import check_name
from ..runtime.options import DetectorOptions
from ..decision_reload import reload_decision_on_sighup
from ..shutdown import stop_on_signals
from ..typed_config import from_dict, load_yaml, require, to_dict
from .options import SourceOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceSection(SourceOptions):
    uri: str = "0"


@dataclass(frozen=True)
class SinksSection:
    save: str | None = None
    save_fps: float | None = None
    jsonl: str | None = None
    ng_dir: str | None = None
    ng_quota_mb: float = 1024.0
    live_view: str | None = None
    live_view_fps: float = 15.0
    live_view_token_file: str | None = None
    live_view_users: str | None = None
    live_view_max_clients: int = 8
    live_view_timeout_s: float = 10.0
    window: bool = False
    mqtt: MqttSinkConfig | None = None      # YAML only: verdicts to an MQTT broker (docs/fleet.md)

    def __post_init__(self) -> None:
        require(self.ng_quota_mb > 0, "sinks.ng_quota_mb", "a number > 0", self.ng_quota_mb)
        require(self.live_view_fps > 0, "sinks.live_view_fps", "a number > 0", self.live_view_fps)
        require(1 <= self.live_view_max_clients <= 256, "sinks.live_view_max_clients", "an integer in [1, 256]",
                self.live_view_max_clients)
        require(0.5 <= self.live_view_timeout_s <= 300, "sinks.live_view_timeout_s", "seconds in [0.5, 300]",
                self.live_view_timeout_s)
        if self.live_view is not None:
            parse_host_port(self.live_view)


@dataclass(frozen=True)
class RunSection:
    max_frames: int | None = None
    duration_s: float | None = None
    on_error: Literal["skip", "stop"] = "skip"
    log_every_s: float = 10.0
    pipelined: bool = False
    batch: bool = True

    def __post_init__(self) -> None:
        require(self.max_frames is None or self.max_frames > 0, "run.max_frames", "null or > 0", self.max_frames)
        require(self.duration_s is None or self.duration_s > 0, "run.duration_s", "null or > 0", self.duration_s)


@dataclass(frozen=True)
class CameraSection:
    """One entry of ``cameras:`` (several cameras in one process, stream/multicam.py)."""
    id: str                                         # in every result (JSON lines, MQTT topic); letters, digits, _ . -
    source: SourceSection = field(default_factory=SourceSection)
    detector: DetectorOptions | None = None         # null: the top-level detector section (replaced, not merged)

    def __post_init__(self) -> None:
        check_name("cameras[].id", self.id)


# Sinks that show or record one picture stream: several cameras would interleave in them.
_SINGLE_CAMERA_SINKS = ("save", "window", "live_view")


@dataclass(frozen=True)
class StreamAppConfig:
    source: SourceSection = field(default_factory=SourceSection)
    detector: DetectorOptions = field(default_factory=DetectorOptions)   # the same type as the PLC's detector:
    sinks: SinksSection = field(default_factory=SinksSection)
    run: RunSection = field(default_factory=RunSection)
    cameras: tuple[CameraSection, ...] = ()        # YAML only: several cameras instead of `source`

    def __post_init__(self) -> None:
        if not self.cameras:
            return
        ids = [c.id for c in self.cameras]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ConfigError("camera ids must be unique", expected="one id per camera", got=", ".join(repeated),
                              fix="rename the repeated cameras[].id")
        used = [k for k in _SINGLE_CAMERA_SINKS if getattr(self.sinks, k)]
        if used:
            raise ConfigError(f"sinks.{used[0]} shows one camera's pictures and cannot take several cameras",
                              expected="with cameras: the sinks jsonl, ng_dir, mqtt", got=", ".join(used),
                              fix="remove it, or run one tocoad-stream per camera for video or live view")
        require(not self.run.pipelined, "run.pipelined", "false with cameras: (multi-camera runs batch instead)",
                self.run.pipelined)


HELP: dict[str, str] = {
    "cameras": "several cameras in one process instead of source: a list of {id, source: {uri, …}, detector "
               "(optional: default the detector section)}; cameras with the same detector share it and are batched "
               "(docs/streams.md, Several cameras)",
    # source
    "uri": "camera index (0), /dev/videoN, csi://N (Jetson CSI), rtsp://…, http://… (MJPEG), a video file, a "
           "folder of images, testsrc:// (test pattern), or a GStreamer pipeline ending in appsink",
    "width": "requested frame width (V4L2, CSI; CSI default 1920)",
    "height": "requested frame height (V4L2, CSI; CSI default 1080)",
    "fps": "requested camera rate; with --realtime, the rate a file or folder is played at",
    "fourcc": "V4L2 pixel format, e.g. MJPG for USB cameras at high resolution",
    "buffer_size": "frames held between capture and the detector (1: always the newest frame)",
    "drop_policy": "latest: drop the oldest frame when the detector falls behind; block: make the capture wait; "
                   "auto: block for files and folders (latest with --realtime), latest for cameras and streams",
    "loop": "files and folders: start again at the end",
    "realtime": "files and folders: deliver at the file's frame rate (or --fps), as a camera would",
    "reconnect": "reconnect a broken camera or stream by itself",
    "reconnect_initial_s": "first wait before reconnecting, in seconds (doubles each failed attempt)",
    "reconnect_max_s": "longest wait between reconnect attempts, in seconds",
    "max_reconnects": "failed attempts in a row before giving up (default: never give up)",
    "require_initial_connection": "fail at start if the source cannot be opened (--no-… to wait for it instead)",
    "open_timeout_s": "RTSP/FFmpeg: connection timeout, in seconds",
    "read_timeout_s": "a live stream silent this long counts as broken and is reconnected, in seconds",
    "rtsp_backend": "auto: GStreamer when OpenCV has it, else FFmpeg",
    "rtsp_transport": "RTSP over TCP (robust) or UDP (lower latency on a clean network)",
    "rtsp_latency_ms": "GStreamer rtspsrc jitter buffer, in milliseconds",
    "codec": "RTSP video codec (GStreamer pipeline)",
    "decoder": "RTSP decoder: nvv4l2decoder (Jetson hardware), avdec (software); auto picks by machine",
    "flip_method": "CSI camera nvvidconv flip-method (0-7)",
    # detector
    "bundle": "bundle folder written by tocoad-export (required)",
    "backend": "inference backend: auto, onnxrt, tensorrt",
    "precision": "model precision in the bundle",
    "search": "nearest-neighbour search: auto, hnsw, exact, refined (HNSW map, exact image score)",
    "threads": "CPU threads for inference (default: the backend's choice)",
    "public_key": "Ed25519 public key file (PEM) the bundle must be signed by (tocoad-sign); unsigned bundles are "
                  "refused",
    "engine_public_key": "Ed25519 public key file (PEM) of the device key TensorRT engines built on the device are "
                         "signed with (tocoad-export engine --device-key); needed for engines when public_key is set",
    # sinks
    "save": "write the overlay video to this file (.mp4 or .avi)",
    "save_fps": "frame rate of the saved video (default: the source's, else 25)",
    "jsonl": "write one JSON line per processed frame (frame_id, timestamp, score, decision, latency_ms, …)",
    "ng_dir": "save NG frames with their anomaly maps into this folder",
    "ng_quota_mb": "disk quota of --ng-dir in MB; the oldest records are removed first",
    "live_view": "serve the live view at HOST:PORT (e.g. 127.0.0.1:8080; 0.0.0.0:8080 for the whole network)",
    "live_view_fps": "most frames per second encoded for the live view",
    "live_view_token_file": "a file holding the live view's access token (open http://HOST:PORT/?token=TOKEN, or "
                            "send Authorization: Bearer TOKEN); required unless bound to 127.0.0.1 or with "
                            "--live-view-users",
    "live_view_users": "a password file (tocoad-plc-security add-user): the live view asks for a login (basic auth)",
    "live_view_max_clients": "most concurrent live-view connections (a browser holds 1-2); more get HTTP 503",
    "live_view_timeout_s": "a live-view client that does not read or send for this long is dropped, in seconds",
    "window": "show the overlay in a desktop window (needs a display and an OpenCV with a GUI)",
    "mqtt": "send every verdict to an MQTT broker, through an on-disk spool (keys: docs/fleet.md)",
    # run
    "max_frames": "stop after this many frames",
    "duration_s": "stop after this many seconds",
    "on_error": "a frame the detector refuses: skip it (counted as dropped) or stop",
    "log_every_s": "log counters, FPS and latency this often, in seconds (0: never)",
    "batch": "with cameras: score the frames of cameras sharing a bundle in one backend call (needs a bundle "
             "exported with --dynamic-batch; batch-1 bundles run frame by frame)",
    "pipelined": "overlap the backbone of the next frame with the search of this one (Detector.predict_stream): "
                 "more FPS, one more frame in flight",
}

_FLAG_NAMES = {"uri": "source"}


def parse_host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError("the live view address must be HOST:PORT", expected="e.g. 127.0.0.1:8080", got=repr(text))
    return host or "127.0.0.1", int(port)


def _flag(name: str) -> str:
    return "--" + _FLAG_NAMES.get(name, name).replace("_", "-")


def _add_field_flag(group: argparse._ArgumentGroup, section: str, f: dataclasses.Field, hint: Any) -> None:
    if any(dataclasses.is_dataclass(a) for a in (hint, *typing.get_args(hint))):
        # a nested section (sinks.mqtt) has too many keys for flags: it is set in the YAML file only
        group.description = f"{group.description or ''}{section}.{f.name} (YAML only): {HELP[f.name]}. "
        return
    dest = f"{section}.{f.name}"
    default = f.default if f.default is not dataclasses.MISSING else None
    text = HELP[f.name] + (f" (default: {default})" if default not in (None, False) else "")
    args = typing.get_args(hint)
    base = next((a for a in args if a is not type(None)), hint) if typing.get_origin(hint) in (
        typing.Union, types.UnionType) else hint
    if base is bool:
        group.add_argument(_flag(f.name), dest=dest, action=argparse.BooleanOptionalAction,
                           default=argparse.SUPPRESS, help=text)
    elif typing.get_origin(base) is Literal:
        group.add_argument(_flag(f.name), dest=dest, choices=typing.get_args(base), default=argparse.SUPPRESS,
                           help=text)
    else:
        # paths stay text here: the strict loader turns them into Path, as it does for the YAML file
        group.add_argument(_flag(f.name), dest=dest, type=str if base is Path else base, default=argparse.SUPPRESS,
                           help=text, metavar=f.name.upper())


def build_parser(prog: str = "tocoad-stream") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=(
        "Run a tocoad-edge bundle on a camera, stream, video file or image folder. Reconnects broken sources, "
        "drops frames (and counts them) when the detector falls behind, and writes results to the sinks you "
        "choose. Every flag is also a key of the YAML file given with --config (section.key, '_' for '-'); "
        "flags override the file."),
        epilog=f"Example: {prog} --bundle bundle/ --source rtsp://cam/stream --jsonl results.jsonl "
               "--live-view 0.0.0.0:8080. See docs/streams.md.")
    p.add_argument("--config", metavar="FILE.yaml", help="YAML file with sections source, detector, sinks, run "
                                                          "(read strictly: unknown keys are errors)")
    p.add_argument("--print-config", action="store_true", help="print the resolved configuration as YAML and exit")
    p.add_argument("--verbose", action="store_true", help="log debug messages")
    for section_field in dataclasses.fields(StreamAppConfig):
        section_cls = section_field.default_factory   # type: ignore[misc]
        if section_cls is dataclasses.MISSING:       # cameras: a list, in the YAML file only
            p.add_argument_group(section_field.name, f"{section_field.name} (YAML only): {HELP[section_field.name]}")
            continue
        group = p.add_argument_group(section_field.name)
        hints = typing.get_type_hints(section_cls)
        for f in sorted(dataclasses.fields(section_cls), key=lambda f: f.name != "uri"):   # --source first
            _add_field_flag(group, section_field.name, f, hints[f.name])
    return p


def resolve_config(args: argparse.Namespace) -> StreamAppConfig:
    """The YAML file (if any) with the flags given on the command line laid over it, read strictly."""
    data = load_yaml(args.config) if args.config else {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {args.config} must be a mapping of sections",
                          expected="source:, detector:, sinks:, run:", got=type(data).__name__)
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for dest, value in vars(args).items():
        if "." in dest:
            section, key = dest.split(".", 1)
            if not isinstance(merged.get(section, {}), dict):
                raise ConfigError(f"config section '{section}' must be a mapping", got=repr(merged[section]))
            merged.setdefault(section, {})[key] = value
    if merged.get("cameras") and "source" in merged:
        raise ConfigError("give either cameras: (several cameras) or source: (one camera), not both",
                          got=f"cameras: {len(merged['cameras'])} entries and source: {merged['source']}",
                          fix="move the source into a cameras: entry, or drop --source / the source: section")
    return from_dict(StreamAppConfig, merged)


def source_options(section: SourceSection) -> SourceOptions:
    return SourceOptions(**{f.name: getattr(section, f.name) for f in dataclasses.fields(SourceOptions)})


def build_sinks(cfg: SinksSection, source_fps: float | None, model=None, camera_models: dict | None = None) -> list:
    from .sinks import JsonLinesSink, LiveViewSink, NgFrameSaver, VideoFileSink, WindowSink

    sinks: list = []
    try:
        if cfg.window:
            sinks.append(WindowSink())
        if cfg.save:
            sinks.append(VideoFileSink(cfg.save, fps=cfg.save_fps or source_fps))
        if cfg.jsonl:
            sinks.append(JsonLinesSink(cfg.jsonl))
        if cfg.ng_dir:
            sinks.append(NgFrameSaver(cfg.ng_dir, quota_mb=cfg.ng_quota_mb))
        if cfg.live_view:
            host, port = parse_host_port(cfg.live_view)
            from .liveview_auth import LiveViewAuth

            live = LiveViewSink(host, port, max_fps=cfg.live_view_fps,
                                auth=LiveViewAuth.from_files(cfg.live_view_token_file, cfg.live_view_users),
                                max_clients=cfg.live_view_max_clients, timeout_s=cfg.live_view_timeout_s)
            sinks.append(live)
            log.info("live view: %s", live.url)
        if cfg.mqtt is not None:
            from ..fleet.sink import MqttSink

            sinks.append(MqttSink(cfg.mqtt, model, camera_models=camera_models))
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks


def run_app(cfg: StreamAppConfig, stop_event: threading.Event | None = None):
    if cfg.cameras:
        return run_cameras_app(cfg, stop_event)
    from ..runtime import Detector
    from .loop import run_stream
    from .sources import open_source

    # Checked before the bundle loads, so a wrong source fails at once; capture starts once the model is ready.
    source = open_source(cfg.source.uri, source_options(cfg.source), start=False)
    try:
        detector = Detector.from_options(cfg.detector)
    except BaseException:
        source.close()
        raise
    try:
        source.start()
        try:
            sinks = build_sinks(cfg.sinks, source.nominal_fps, detector)
        except BaseException:
            source.close()
            raise
        r = cfg.run
        with reload_decision_on_sighup(detector):       # tocoad-threshold + kill -HUP: new thresholds, no restart
            return run_stream(detector, source, sinks, max_frames=r.max_frames, duration_s=r.duration_s,
                              on_error=r.on_error, stop_event=stop_event, log_every_s=r.log_every_s or None,
                              pipelined=r.pipelined)
    finally:
        detector.close()


def run_cameras_app(cfg: StreamAppConfig, stop_event: threading.Event | None = None) -> Any:
    """``cameras:``: every camera's source, one detector per distinct detector section, ``run_cameras``."""
    from ..runtime import Detector
    from .multicam import Camera, run_cameras
    from .sources import open_source

    sources: dict[str, Any] = {}
    detectors: dict[DetectorOptions, Any] = {}
    try:
        for cam in cfg.cameras:     # every source checked before a bundle loads, as for one camera
            sources[cam.id] = open_source(cam.source.uri, source_options(cam.source), start=False)
        for cam in cfg.cameras:     # cameras with the same detector section share one detector (and its batch)
            options = cam.detector or cfg.detector
            if options not in detectors:
                detectors[options] = Detector.from_options(options)
        cameras = [Camera(c.id, sources[c.id], detectors[c.detector or cfg.detector]) for c in cfg.cameras]
        for camera in cameras:
            camera.source.start()
        first = cameras[0].detector
        sinks = build_sinks(cfg.sinks, None, first,
                            {c.id: c.detector for c in cameras if c.detector is not first})
        r = cfg.run
        return run_cameras(cameras, sinks, max_frames=r.max_frames, duration_s=r.duration_s, on_error=r.on_error,
                           stop_event=stop_event, log_every_s=r.log_every_s or None, batch=r.batch)
    finally:
        for source in sources.values():
            source.close()
        for detector in detectors.values():
            detector.close()


def report_dict(report) -> dict[str, Any]:
    s = report.stats

    def r(v):
        return None if v is None else round(v, 2)

    return {"end_reason": report.end_reason, "captured": s.captured, "processed": s.processed, "dropped": s.dropped,
            "dropped_by_reason": s.dropped_by_reason, "ng": s.ng, "review": s.review, "fps": r(report.fps_overall),
            "latency_ms_mean": r(report.latency_ms_mean), "latency_ms_p50": r(report.latency_ms_p50),
            "latency_ms_p99": r(report.latency_ms_p99), "reconnects": s.reconnects, "elapsed_s": r(s.elapsed_s),
            "accounted": report.consistent}


def main(argv: list[str] | None = None, prog: str = "tocoad-stream") -> int:
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = resolve_config(args)
        if args.print_config:
            import yaml

            print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
            return 0
        with stop_on_signals() as stop:
            report = run_app(cfg, stop)
    except TocoadError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    if cfg.cameras:
        from .multicam import report_dict as cameras_report_dict

        print(json.dumps(cameras_report_dict(report, report_dict)))
    else:
        print(json.dumps(report_dict(report)))
    return 1 if report.end_reason == "source_error" else 0
