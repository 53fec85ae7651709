"""The `python -m server` command line, run in-process."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import argon2
import pytest

from server.auth import TokenService
from server.cli import main

SECRET = "c" * 48


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run each command in an empty directory with a known secret and no stray overrides."""
    for var in ("CONFIG", "PORT", "HOST", "DATA_DIR", "REDIS_URL", "SERVER_SECRET_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SERVER_SECRET", SECRET)
    monkeypatch.chdir(tmp_path)


def token_args(**overrides: str) -> list[str]:
    args = {"identity": "mobile01-cam", "site": "mobile01", "room": "consultation", "grants": "publish,subscribe"}
    args.update(overrides)
    return ["token", *(f"--{k}={v}" for k, v in args.items())]


def test_token_command_prints_a_token_the_server_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*token_args(), "--ttl", "600", "--name", "Vehicle 1"]) == 0
    token = capsys.readouterr().out.strip()
    identity = TokenService(SECRET.encode()).verify_device_token(token)
    assert identity.identity == "mobile01-cam"
    assert identity.site == "mobile01"
    assert identity.room == "consultation"
    assert identity.name == "Vehicle 1"
    assert identity.grants == frozenset({"publish", "subscribe"})


def test_token_for_an_unknown_site_fails_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(token_args(site="atlantis")) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "atlantis" in captured.err


def test_token_for_an_unknown_room_fails_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(token_args(room="attic")) == 2
    assert "attic" in capsys.readouterr().err


def test_token_with_an_unknown_grant_fails_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(token_args(grants="publish,teleport")) == 2
    assert "teleport" in capsys.readouterr().err


def test_token_with_a_non_positive_ttl_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*token_args(), "--ttl", "0"]) == 2
    assert "--ttl" in capsys.readouterr().err


def test_token_with_a_short_secret_fails(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SERVER_SECRET", "short")
    assert main(token_args()) == 2
    assert "SERVER_SECRET" in capsys.readouterr().err


def test_rooms_command_lists_room_ids_and_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rooms"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("consultation\t")
    assert lines[0] == "consultation\t市领导会商室 / Leaders' Consultation Room"
    assert any(line.startswith("command\t") for line in lines)


def test_config_comes_from_the_option_then_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text(
        '[city]\nname_zh = "小市"\nname_en = "Tiny"\n'
        '[[sites]]\nid = "hq"\nname_zh = "总部"\nname_en = "HQ"\nkind = "office"\n'
        '[[rooms]]\nid = "war-room"\nname_zh = "作战室"\nname_en = "War Room"\n',
        encoding="utf-8",
    )
    assert main(["rooms", "--config", str(path)]) == 0
    assert capsys.readouterr().out == "war-room\t作战室 / War Room\n"
    monkeypatch.setenv("CONFIG", str(path))
    assert main(["rooms"]) == 0
    assert capsys.readouterr().out.startswith("war-room\t")


def test_bad_config_fails_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rooms", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml" in capsys.readouterr().err


def test_hash_password_reads_stdin_and_prints_an_argon2_hash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("democounty03\n"))
    assert main(["hash-password"]) == 0
    encoded = capsys.readouterr().out.strip()
    assert encoded.startswith("$argon2id$")
    assert argon2.PasswordHasher().verify(encoded, "democounty03")


def test_empty_password_is_refused(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    assert main(["hash-password"]) == 2
    assert "empty password" in capsys.readouterr().err


def test_missing_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err
