"""Password files (scrypt) and secret comparison: round trip, refusals with the line and the fix."""
from __future__ import annotations

import pytest

from tocoad_edge.credentials import PasswordFile, add_user, hash_password, read_secret_file, verify_password
from tocoad_edge.errors import ConfigError


def test_hash_round_trip_and_salting() -> None:
    a, b = hash_password("pw-123456"), hash_password("pw-123456")
    assert a != b and a.startswith("scrypt$16384$8$1$")          # a fresh salt each time
    assert verify_password("pw-123456", a) and verify_password("pw-123456", b)
    assert not verify_password("pw-123457", a)


def test_password_file_users_roles_and_replacement(tmp_path) -> None:
    path = tmp_path / "users.txt"
    assert add_user(path, "plc", "operator", "first-password", ("operator", "viewer")) is True
    assert add_user(path, "hmi", "viewer", "second-password") is True
    assert add_user(path, "plc", "operator", "changed-password") is False      # replaced, not duplicated
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    users = PasswordFile.load(path, ("operator", "viewer"))
    assert sorted(users.entries) == ["hmi", "plc"]
    assert users.check("plc", "changed-password").role == "operator"
    assert users.check("plc", "first-password") is None
    assert users.check("nobody", "changed-password") is None and users.check(None, None) is None
    assert "changed-password" not in path.read_text()


@pytest.mark.parametrize("line, message", [
    ("plc:operator", "not a user line"),
    ("plc:admin:" + "scrypt$16384$8$1$c2FsdA==$aGFzaA==", "unknown role"),
    ("plc:operator:plaintext-password", "not in the expected form"),
    ("bad name:operator:scrypt$16384$8$1$c2FsdA==$aGFzaA==", "bad user name"),
])
def test_malformed_lines_name_the_line_and_the_fix(tmp_path, line, message) -> None:
    path = tmp_path / "users.txt"
    path.write_text("# users\n\n" + line + "\n")
    with pytest.raises(ConfigError, match=message) as info:
        PasswordFile.load(path, ("operator", "viewer"))
    assert f"{path}:3" in str(info.value)


def test_empty_file_duplicate_user_short_password_and_short_token(tmp_path) -> None:
    path = tmp_path / "users.txt"
    path.write_text("# nobody yet\n")
    with pytest.raises(ConfigError, match="has no users"):
        PasswordFile.load(path)
    entry = "plc:operator:" + hash_password("whatever-pw")
    path.write_text(entry + "\n" + entry + "\n")
    with pytest.raises(ConfigError, match="listed twice"):
        PasswordFile.load(path)
    with pytest.raises(ConfigError, match="too short"):
        add_user(tmp_path / "other.txt", "plc", "operator", "short")
    token = tmp_path / "token"
    token.write_text("abc\n")
    with pytest.raises(ConfigError, match="too short") as info:
        read_secret_file(token, "live-view token")
    assert "token_urlsafe" in str(info.value)
    token.write_text("0123456789abcdef-long-enough\n")
    assert read_secret_file(token, "live-view token") == "0123456789abcdef-long-enough"
