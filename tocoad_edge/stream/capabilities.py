"""What this OpenCV build can do (GStreamer, FFmpeg, V4L2, a GUI), read from ``cv2.getBuildInformation()``.

pip's ``opencv-python-headless`` has FFmpeg and V4L2 but neither GStreamer nor a GUI; JetPack's OpenCV has
GStreamer (needed for the CSI camera and hardware-decoded RTSP on Jetson).
"""
from __future__ import annotations

import functools
import re

from ..errors import SourceError

_FIXES = {
    "GStreamer": "use an OpenCV built with GStreamer: on Jetson, JetPack's OpenCV (python3-opencv from "
                 "JetPack; install tocoad-edge with TOCOAD_SYSTEM_OPENCV=1 and `pip uninstall "
                 "opencv-python-headless` so it is not shadowed)",
    "FFmpeg": "install an OpenCV build with FFmpeg (pip's opencv-python-headless has it)",
    "V4L2": "use an OpenCV build with V4L2 (pip's opencv-python-headless on Linux has it)",
    "GUI": "use the live view (--live-view) on a headless machine, or an OpenCV with GTK (JetPack's OpenCV)",
}


def _build_information() -> str:
    import cv2

    return cv2.getBuildInformation()


def _parse(info: str) -> dict[str, bool]:
    def yes(label: str) -> bool:
        m = re.search(rf"^\s*{label}:\s*(\S+)", info, re.MULTILINE | re.IGNORECASE)
        return bool(m) and m.group(1).upper().startswith("YES")

    gui = re.search(r"^\s*GUI:\s*(\S+)", info, re.MULTILINE)
    gui_ok = bool(gui) and gui.group(1).upper() not in ("NONE", "NO")
    return {"GStreamer": yes("GStreamer"), "FFmpeg": yes("FFMPEG"), "V4L2": yes(r"v4l/v4l2"), "GUI": gui_ok}


@functools.lru_cache(maxsize=1)
def capabilities() -> dict[str, bool]:
    """``{"GStreamer": bool, "FFmpeg": bool, "V4L2": bool, "GUI": bool}`` for the imported cv2."""
    return _parse(_build_information())


def has(capability: str) -> bool:
    return capabilities()[capability]


def require(capability: str, what: str, *, error: type = SourceError) -> None:
    """Raise ``error`` naming the missing capability and the fix, unless this cv2 has it."""
    if not has(capability):
        import cv2

        raise error(f"{what} needs OpenCV with {capability}, and this OpenCV ({cv2.__version__}) has none",
                    expected=f"cv2.getBuildInformation() reporting {capability}: YES",
                    got=f"{capability}: NO", fix=_FIXES[capability])


