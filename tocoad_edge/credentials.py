"""Password files and secret comparison for the network services (OPC UA users, live-view basic auth).

A password file has one user per line, ``name:role:scrypt$N$r$p$salt$hash`` (salt and hash in base64);
blank lines and ``#`` comments are ignored. Only the salted scrypt hash is stored, so a copied file does not
give the passwords away. ``tocoad-plc-security add-user FILE NAME --role ROLE`` writes one (standard library
only: ``hashlib.scrypt``). Every comparison of a secret is constant-time (``hmac.compare_digest``), and an
unknown user name costs the same hash as a known one, so response time tells nothing about which names exist.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

SCHEME = "scrypt"
# scrypt cost: N=2^14, r=8 → 16 MiB and ~0.05–0.1 s per check on one core: slow for a guesser, fine per login.
N, R, P, DKLEN = 2 ** 14, 8, 1, 32
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def hash_password(password: str, *, salt: bytes | None = None, n: int = N, r: int = R, p: int = P) -> str:
    """The stored form of ``password``: ``scrypt$N$r$p$salt$hash``."""
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=DKLEN)
    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return f"{SCHEME}${n}${r}${p}${b64(salt)}${b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches ``encoded`` (from ``hash_password``); constant-time compare."""
    scheme, n, r, p, salt, digest = encoded.split("$")
    if scheme != SCHEME:
        return False
    expected = base64.b64decode(digest)
    got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                         dklen=len(expected))
    return hmac.compare_digest(got, expected)


def secrets_equal(given: str | bytes, expected: str | bytes) -> bool:
    """Constant-time equality of two secrets (tokens)."""
    a = given.encode("utf-8") if isinstance(given, str) else given
    b = expected.encode("utf-8") if isinstance(expected, str) else expected
    return hmac.compare_digest(a, b)


def read_secret_file(path: str | Path, what: str) -> str:
    """A token kept in a file of its own (first line, stripped); refuses a missing or empty file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8").strip().splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file {p}", got=str(exc),
                          fix="check the path and permissions (the file should be readable by this user only)"
                          ) from None
    token = text[0].strip() if text else ""
    if len(token) < 16:
        raise ConfigError(f"the {what} in {p} is too short", expected="at least 16 characters",
                          got=f"{len(token)} characters",
                          fix=f"write a random token into it, e.g. python -c \"import secrets; "
                              f"print(secrets.token_urlsafe(32))\" > {p}")
    return token


@dataclass(frozen=True)
class UserEntry:
    name: str
    role: str
    password_hash: str


class PasswordFile:
    """The users of one password file. ``check(name, password)`` → the ``UserEntry`` or None."""

    def __init__(self, entries: dict[str, UserEntry], path: Path | None = None):
        self.entries = entries
        self.path = path
        self._dummy = hash_password("not a password")     # the work an unknown name costs too

    @classmethod
    def load(cls, path: str | Path, roles: tuple[str, ...] | None = None) -> "PasswordFile":
        p = Path(path)
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read the password file {p}", got=str(exc),
                              fix=f"create it with: tocoad-plc-security add-user {p} NAME --role ROLE") from None
        entries: dict[str, UserEntry] = {}
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            entry = _parse_line(line, p, number, roles)
            if entry.name in entries:
                raise ConfigError(f"{p}:{number}: user '{entry.name}' is listed twice",
                                  expected="one line per user", got=f"a second line for '{entry.name}'",
                                  fix="delete one of the two lines")
            entries[entry.name] = entry
        if not entries:
            raise ConfigError(f"the password file {p} has no users", expected="at least one name:role:hash line",
                              got="an empty file", fix=f"tocoad-plc-security add-user {p} NAME --role ROLE")
        return cls(entries, p)

    def check(self, name: str | None, password: str | None) -> UserEntry | None:
        entry = self.entries.get(name or "")
        encoded = entry.password_hash if entry is not None else self._dummy
        ok = verify_password(password or "", encoded)
        return entry if ok and entry is not None else None


def _parse_line(line: str, path: Path, number: int, roles: tuple[str, ...] | None) -> UserEntry:
    parts = line.split(":")
    where = f"{path}:{number}"
    if len(parts) != 3:
        raise ConfigError(f"{where}: not a user line", expected="name:role:scrypt$N$r$p$salt$hash",
                          got=f"{len(parts)} ':'-separated fields",
                          fix="add users with tocoad-plc-security add-user (do not write hashes by hand)")
    name, role, encoded = parts
    if not _NAME.match(name):
        raise ConfigError(f"{where}: bad user name", expected="1-64 letters, digits, _ . @ -", got=repr(name))
    if roles is not None and role not in roles:
        raise ConfigError(f"{where}: unknown role for user '{name}'", expected=f"one of {list(roles)}", got=repr(role),
                          fix=f"change the role field to one of {list(roles)}")
    fields = encoded.split("$")
    if len(fields) != 6 or fields[0] != SCHEME or not all(f.isdigit() for f in fields[1:4]):
        raise ConfigError(f"{where}: the password hash of '{name}' is not in the expected form",
                          expected="scrypt$N$r$p$salt$hash", got=encoded[:24] + ("…" if len(encoded) > 24 else ""),
                          fix=f"set the password again: tocoad-plc-security add-user {path} {name} --role {role}")
    return UserEntry(name, role, encoded)


def add_user(path: str | Path, name: str, role: str, password: str, roles: tuple[str, ...] | None = None) -> bool:
    """Add ``name`` to the password file (or replace its line); creates the file with mode 0600.

    Returns True when the user was new."""
    p = Path(path)
    if not _NAME.match(name):
        raise ConfigError("bad user name", expected="1-64 letters, digits, _ . @ -", got=repr(name))
    if roles is not None and role not in roles:
        raise ConfigError(f"unknown role for user '{name}'", expected=f"one of {list(roles)}", got=repr(role))
    if len(password) < 8:
        raise ConfigError("the password is too short", expected="at least 8 characters",
                          got=f"{len(password)} characters")
    line = f"{name}:{role}:{hash_password(password)}"
    lines = p.read_text(encoding="utf-8").splitlines() if p.exists() else []
    kept = [x for x in lines if x.split(":", 1)[0] != name]
    new = len(kept) == len(lines)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(kept + [line]) + "\n")
    return new
