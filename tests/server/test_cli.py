"""The `python -m server` command line, run in-process."""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import argon2
import pytest
import redis.asyncio as aioredis

from server.auth import TokenRevoked, TokenService
from server.cli import main
from server.revocations import RevocationList
from server.store import RedisStore

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


# ------------------------------------------------------- devices apart from users, lifetimes, revoking ---

CLI_REDIS_DB = 13  # the CLI keeps the default key prefix: a database of its own keeps these tests apart


@pytest.fixture
async def shared_redis(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> AsyncIterator[str]:
    """REDIS_URL for the CLI: a database of the test Redis, emptied of revocations and device links around the test."""
    url = redis_url.rsplit("/", 1)[0] + f"/{CLI_REDIS_DB}"
    monkeypatch.setenv("REDIS_URL", url)

    async def clean() -> None:
        client = aioredis.Redis.from_url(url)
        try:
            keys = [k async for k in client.scan_iter(match="cp:revoked*")] + [k async for k in client.scan_iter(match="cp:device-links*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()

    await clean()
    yield url
    await clean()


def test_a_device_token_named_like_a_user_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(token_args(identity="mayor")) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "'mayor' is a user's name" in captured.err
    assert main(token_args(identity="device:x")) == 2


def test_a_device_token_longer_than_the_cap_is_refused_and_the_cap_is_a_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*token_args(), "--ttl", str(30 * 86400 + 1)]) == 2
    assert "device_token_max_ttl" in capsys.readouterr().err
    assert main([*token_args(), "--ttl", str(30 * 86400)]) == 0
    monkeypatch.setenv("DEVICE_TOKEN_MAX_TTL", "3600")
    capsys.readouterr()
    assert main([*token_args(), "--ttl", "3601"]) == 2


def test_issuing_needs_identity_site_room_and_grants(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--identity", "x"]) == 2
    assert "--site, --room, --grants" in capsys.readouterr().err


def test_revoking_without_a_shared_store_says_where_to_revoke_instead(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(token_args()) == 0
    token = capsys.readouterr().out.strip()
    assert main(["token", "--revoke", token]) == 2
    assert "/admin/devices" in capsys.readouterr().err


@pytest.mark.redis
async def test_a_revoked_token_is_refused_by_a_server_that_reads_the_store(
    shared_redis: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await asyncio.to_thread(main, [*token_args(), "--name", "临江县 手机"]) == 0
    token = capsys.readouterr().out.strip()
    store = RedisStore(shared_redis, node_id="server")
    server_tokens = TokenService(SECRET.encode(), revocations=RevocationList(store))
    try:
        await store.start()
        identity = server_tokens.verify_device_token(token)
        links = await store.list_device_links()
        assert [(link.token_id, link.identity, link.name) for link in links] == [(identity.token_id, "mobile01-cam", "临江县 手机")]
        assert await asyncio.to_thread(main, ["token", "--revoke", token, "--reason", "phone lost"]) == 0
        assert identity.token_id in capsys.readouterr().out
        assert [r.token_id for r in await server_tokens.revocations.sync()] == [identity.token_id]
        with pytest.raises(TokenRevoked):
            server_tokens.verify_device_token(token)
        records, _ = await store.revocations_after(0)
        assert [(r.identity, r.kind, r.reason, r.expires_at) for r in records] == [
            ("mobile01-cam", "device", "phone lost", float(identity.expires_at))]
    finally:
        await store.close()


@pytest.mark.redis
async def test_a_token_id_alone_is_revoked_until_its_recorded_link_expires(
    shared_redis: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await asyncio.to_thread(main, [*token_args(), "--ttl", "600"]) == 0
    token_id = TokenService(SECRET.encode()).facts(capsys.readouterr().out.strip()).token_id
    assert await asyncio.to_thread(main, ["token", "--revoke", token_id]) == 0
    assert await asyncio.to_thread(main, ["token", "--revoke", "not-a-token"]) == 2
    store = RedisStore(shared_redis, node_id="server")
    try:
        records, _ = await store.revocations_after(0)
        link = await store.get_device_link(token_id)
    finally:
        await store.close()
    assert link is not None
    assert [(r.token_id, r.identity, r.expires_at) for r in records] == [(token_id, "mobile01-cam", link.expires_at)]
