"""What a source hands out: a ``Frame``, or an explicit ``ReadStatus`` saying why there is none."""
from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np


class ReadStatus(enum.Enum):
    OK = "ok"                          # ``frame`` holds the next frame
    TIMEOUT = "timeout"                # no frame within the timeout (the source may be reconnecting)
    END_OF_STREAM = "end_of_stream"    # a file or folder is finished; no more frames will come
    ERROR = "error"                    # the source failed for good (reconnect off or attempts used up)


@dataclass(frozen=True)
class Frame:
    id: int               # 0, 1, 2, … per captured frame, never reset by a reconnect (gaps = drops)
    timestamp: float      # wall-clock capture time, seconds since the epoch (time.time())
    monotonic: float      # time.monotonic() at capture; latency = time.monotonic() - frame.monotonic
    image: np.ndarray     # HxWx3 uint8 BGR (or HxW gray, as the source delivered it)


@dataclass(frozen=True)
class ReadResult:
    status: ReadStatus
    frame: Frame | None = None
    error: str | None = None   # why: the last connection error (TIMEOUT while reconnecting, ERROR)

    @property
    def ok(self) -> bool:
        return self.status is ReadStatus.OK
