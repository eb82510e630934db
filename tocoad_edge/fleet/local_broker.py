"""A Mosquitto broker on a free loopback port, in its own folder: for trying the fleet parts on one machine, and
for the tests and benchmarks (which use a real broker, never a mock).

Persistence is on, so subscribers' sessions and queued messages survive ``stop()`` + ``start()`` (Mosquitto writes
them at a clean shutdown, SIGTERM). ``max_queued_messages`` is raised from Mosquitto's default of 1000: a gateway
replaying a long outage from its spool sends faster than a Python subscriber reads, and Mosquitto silently drops
what passes that per-subscriber queue (measured: docs/fleet.md). Needs the ``mosquitto`` binary (Debian:
``apt-get install mosquitto``).

The broker runs as the user who starts it (``user`` in its config): Mosquitto started as root otherwise drops to
the ``mosquitto`` user, which cannot write a folder private to root, and then silently keeps no persistence file:
a restart forgets every subscriber's session, and verdicts published before a consumer re-subscribes are
acknowledged to the gateway and dropped (the "lost window" of docs/fleet.md). ``start`` checks the broker could
write its folder.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from ..errors import ResourceError


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
                                             if Path(p).is_file()), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalBroker:
    def __init__(self, folder: str | Path, port: int | None = None, *, password_file: str | Path | None = None,
                 max_queued_messages: int = 100_000, extra_config: str = ""):
        self.binary = mosquitto_binary()
        if self.binary is None:
            raise ResourceError("the mosquitto broker is not installed", expected="a 'mosquitto' binary on PATH",
                                fix="apt-get install mosquitto (Debian/Ubuntu)")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        auth = (f"allow_anonymous false\npassword_file {password_file}\n" if password_file
                else "allow_anonymous true\n")
        self.config = self.folder / "mosquitto.conf"
        self.config.write_text(
            f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
            f"listener {self.port} 127.0.0.1\n{auth}persistence true\npersistence_location {self.folder}/\n"
            f"max_queued_messages {max_queued_messages}\n"
            f"log_dest file {self.folder / 'mosquitto.log'}\nlog_type error\nlog_type warning\nlog_type notice\n"
            f"{extra_config}",
            encoding="utf-8")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> "LocalBroker":
        self.proc = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ResourceError("mosquitto exited at start", got=self.proc.stderr.read().decode()[-500:],
                                    fix=f"check {self.config}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                time.sleep(0.05)
                continue
            self._check_writable(deadline)
            return self
        self.stop()
        raise ResourceError(f"mosquitto did not listen on port {self.port} within {timeout_s} s")

    def _check_writable(self, deadline: float) -> None:
        """The log file appears once the broker (as the user it runs as) writes its folder; without it, it could
        not save its persistence file either."""
        log_file = self.folder / "mosquitto.log"
        while not log_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not log_file.exists():
            self.stop()
            raise ResourceError(f"mosquitto cannot write its folder {self.folder}",
                                expected="the broker's log and persistence files in that folder",
                                got="no mosquitto.log after the start",
                                fix="give the broker's user write access to the folder (and every folder above it)")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
        """SIGTERM: a clean shutdown that saves the persistence file; SIGKILL: a crash."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "LocalBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
