"""Capped exponential backoff between reconnect attempts."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Backoff:
    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 10.0
    attempt: int = 0

    def next_delay(self) -> float:
        """The wait before the next attempt: initial · factor^attempt, capped at ``max_s``."""
        delay = min(self.max_s, self.initial_s * self.factor ** min(self.attempt, 64))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
