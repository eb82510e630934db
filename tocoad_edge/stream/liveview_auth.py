"""Who may see the live view: a bearer token, or user names and passwords from a password file (basic auth).

The token is accepted as ``Authorization: Bearer <token>`` (scripts) or ``?token=<token>`` (a browser: the page
passes it on to the stream and the stats). Comparisons are constant-time. A password is checked with scrypt
once per distinct ``Authorization`` header; later requests with the same header (the page polls its stats
twice a second) are matched against a SHA-256 of it, so basic auth does not cost a hash per request.
"""
from __future__ import annotations

import base64
import hashlib
import threading
import urllib.parse
from pathlib import Path

from ..credentials import PasswordFile, read_secret_file, secrets_equal

REALM = "tocoad-edge live view"


class LiveViewAuth:
    def __init__(self, token: str | None = None, users: PasswordFile | None = None):
        self.token = token
        self.users = users
        self._verified: set[bytes] = set()      # sha256 of Authorization headers that passed a password check
        self._lock = threading.Lock()

    @classmethod
    def from_files(cls, token_file: str | Path | None, users_file: str | Path | None) -> "LiveViewAuth | None":
        if token_file is None and users_file is None:
            return None
        token = read_secret_file(token_file, "live-view token") if token_file is not None else None
        users = PasswordFile.load(users_file) if users_file is not None else None
        return cls(token, users)

    @property
    def challenge(self) -> str:
        return f'Basic realm="{REALM}", charset="UTF-8"' if self.users is not None else f'Bearer realm="{REALM}"'

    def allows(self, authorization: str | None, query: str) -> bool:
        if self.token is not None:
            given = urllib.parse.parse_qs(query).get("token", [None])[0]
            if given is None and authorization and authorization[:7].lower() == "bearer ":
                given = authorization[7:].strip()
            if given is not None and secrets_equal(given, self.token):
                return True
        if self.users is not None and authorization and authorization[:6].lower() == "basic ":
            return self._basic(authorization)
        return False

    def _basic(self, authorization: str) -> bool:
        key = hashlib.sha256(authorization.encode("utf-8", "replace")).digest()
        with self._lock:
            if key in self._verified:
                return True
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
            name, _, password = decoded.partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        assert self.users is not None
        if self.users.check(name, password) is None:
            return False
        with self._lock:
            if len(self._verified) > 1024:      # bounded: a flood of distinct good logins cannot grow it forever
                self._verified.clear()
            self._verified.add(key)
        return True
