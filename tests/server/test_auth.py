"""Tokens, passwords, the signing secret and TLS certificates."""

from __future__ import annotations

import datetime
import ssl
import stat
from pathlib import Path

import argon2
import jwt
import msgspec
import pytest
from cryptography import x509

from server.auth import (
    DEVICE_PREFIX,
    AccessWithdrawn,
    BadCredentials,
    Forbidden,
    PasswordVerifier,
    TokenExpired,
    TokenInvalid,
    TokenMissing,
    TokenNotYetValid,
    TokenRequestError,
    TokenRevoked,
    TokenService,
    TokenTooLong,
    WeakSecret,
    WrongRoom,
)
from server.config import DEFAULT_CONFIG_PATH, Config, ServerSettings, UserConfig, load_config
from server.directory import Directory
from server.store import RevocationRecord
from server.keys import SecretTooShort, SecretUnreadable, load_previous_secrets, load_secret
from server.tls import TlsError, ensure_self_signed, server_ssl_context

SECRET = b"k" * 32
OTHER_SECRET = b"z" * 32
START = 1_800_000_000.0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tokens(clock: Clock) -> TokenService:
    return TokenService(SECRET, clock=clock)


@pytest.fixture
def cheap_hasher() -> argon2.PasswordHasher:
    # Real argon2, small parameters: the tests check behaviour, not cost.
    return argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def make_user(password_hash: str = "$argon2id$unused", rooms: tuple[str, ...] = ()) -> UserConfig:
    return UserConfig(
        username="mayor",
        password_hash=password_hash,
        display_name="Mayor",
        site="office",
        grants=("publish", "subscribe", "moderate", "issue"),
        rooms=rooms,
    )


def device_token(tokens: TokenService, ttl: int = 600) -> str:
    return tokens.issue_device_token(
        identity="mobile01-cam", site="mobile01", room="consultation", grants=["publish"], ttl=ttl, name="Vehicle 1"
    )


def claims_of(token: str) -> dict[str, object]:
    return jwt.decode(token, options={"verify_signature": False})


# ------------------------------------------------------------------ tokens ---


def test_device_token_round_trips_to_its_identity(tokens: TokenService) -> None:
    identity = tokens.verify_device_token(device_token(tokens))
    assert identity.identity == "mobile01-cam"
    assert identity.site == "mobile01"
    assert identity.name == "Vehicle 1"
    assert identity.kind == "device"
    assert identity.room == "consultation"
    assert identity.grants == frozenset({"publish"})
    assert identity.expires_at == int(START) + 600
    assert len(identity.token_id) == 32
    assert identity.can("publish") and not identity.can("issue")


def test_session_round_trips_to_the_users_identity(tokens: TokenService) -> None:
    identity = tokens.verify_session(tokens.issue_session(make_user(), ttl=3600))
    assert identity.identity == "mayor"
    assert identity.kind == "user"
    assert identity.room is None
    assert identity.rooms == frozenset()
    assert identity.can("issue")
    identity.check_room("consultation")
    identity.check_room("any-room-at-all")


def test_token_pins_hs256_issuer_audience_and_required_claims(tokens: TokenService) -> None:
    token = device_token(tokens)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = claims_of(token)
    assert claims["iss"] == "command-platform"
    assert claims["aud"] == "device"
    assert {"exp", "iat", "sub", "jti"} <= claims.keys()


def test_expired_token_is_refused(tokens: TokenService, clock: Clock) -> None:
    token = device_token(tokens, ttl=60)
    clock.now += 59
    tokens.verify_device_token(token)
    clock.now += 1
    with pytest.raises(TokenExpired) as info:
        tokens.verify_device_token(token)
    assert info.value.code == "token_expired"


def test_token_issued_in_the_future_is_refused(clock: Clock) -> None:
    token = device_token(TokenService(SECRET, clock=Clock(START + 3600)))
    with pytest.raises(TokenInvalid):
        TokenService(SECRET, clock=clock).verify_device_token(token)


def test_session_cookie_is_not_a_device_token(tokens: TokenService) -> None:
    with pytest.raises(TokenInvalid):
        tokens.verify_device_token(tokens.issue_session(make_user(), ttl=3600))


def test_device_token_is_not_a_session_cookie(tokens: TokenService) -> None:
    with pytest.raises(TokenInvalid) as info:
        tokens.verify_session(device_token(tokens))
    assert info.value.code == "invalid_token"


def test_tampered_claims_break_the_signature(tokens: TokenService) -> None:
    header, _, signature = device_token(tokens).split(".")
    forged_claims = {**claims_of(device_token(tokens)), "grants": ["admin"]}
    forged_body = jwt.encode(forged_claims, OTHER_SECRET, algorithm="HS256").split(".")[1]
    with pytest.raises(TokenInvalid):
        tokens.verify_device_token(f"{header}.{forged_body}.{signature}")


def test_token_signed_with_another_secret_is_refused(tokens: TokenService, clock: Clock) -> None:
    with pytest.raises(TokenInvalid):
        tokens.verify_device_token(device_token(TokenService(OTHER_SECRET, clock=clock)))


def test_unsigned_alg_none_token_is_refused(tokens: TokenService) -> None:
    unsigned = jwt.encode(claims_of(device_token(tokens)), "", algorithm="none")
    with pytest.raises(TokenInvalid):
        tokens.verify_device_token(unsigned)


def test_garbage_and_empty_tokens_are_refused(tokens: TokenService) -> None:
    with pytest.raises(TokenInvalid):
        tokens.verify_device_token("not-a-token")
    with pytest.raises(TokenMissing) as info:
        tokens.verify_device_token("")
    assert info.value.code == "unauthenticated"


async def test_revoked_token_is_refused(tokens: TokenService) -> None:
    token = device_token(tokens)
    identity = tokens.verify_device_token(token)
    await tokens.revocations.revoke(RevocationRecord(token_id=identity.token_id, expires_at=identity.expires_at, revoked_at=START))
    with pytest.raises(TokenRevoked) as info:
        tokens.verify_device_token(token)
    assert info.value.code == "token_revoked"
    tokens.verify_device_token(device_token(tokens))


def forged(tokens: TokenService, **claims: object) -> str:
    """A device token signed with the right secret, with some claims changed."""
    return jwt.encode({**claims_of(device_token(tokens)), **claims}, SECRET, algorithm="HS256")


def test_a_token_not_valid_before_a_future_time_is_refused(tokens: TokenService, clock: Clock) -> None:
    with pytest.raises(TokenNotYetValid) as info:
        tokens.verify_device_token(forged(tokens, nbf=int(START) + 3600))
    assert info.value.code == "token_not_yet_valid"
    tokens.verify_device_token(forged(tokens, nbf=int(START) + 30))  # within the clock skew between nodes
    tokens.verify_device_token(forged(tokens, nbf=int(START) - 10))
    with pytest.raises(TokenInvalid):
        tokens.verify_device_token(forged(tokens, nbf="tomorrow"))


def test_a_device_token_may_not_outlive_the_cap(tokens: TokenService) -> None:
    year_3000 = 32_503_680_000
    with pytest.raises(TokenTooLong) as info:
        tokens.verify_device_token(forged(tokens, exp=year_3000))
    assert info.value.code == "token_lifetime_too_long"
    capped = TokenService(SECRET, clock=lambda: START, max_device_ttl=3600)
    capped.verify_device_token(device_token(capped, ttl=3600))
    with pytest.raises(TokenTooLong):
        capped.verify_device_token(device_token(tokens, ttl=3601))  # minted where the cap was longer


def test_minting_a_device_token_longer_than_the_cap_is_refused(clock: Clock) -> None:
    tokens = TokenService(SECRET, clock=clock, max_device_ttl=86400)
    device_token(tokens, ttl=86400)
    with pytest.raises(TokenRequestError, match="cap"):
        device_token(tokens, ttl=86401)
    with pytest.raises(TokenRequestError):
        tokens.issue_device_token(identity=DEVICE_PREFIX + "mayor", site="office", room="consultation", grants=[], ttl=60)


def test_facts_of_a_token_are_read_even_after_it_expired(tokens: TokenService, clock: Clock) -> None:
    token = device_token(tokens, ttl=60)
    clock.now += 3600
    facts = tokens.facts(token)
    assert (facts.kind, facts.subject, facts.expires_at) == ("device", "mobile01-cam", int(START) + 60)
    assert facts.token_id == claims_of(token)["jti"]
    assert tokens.facts(tokens.issue_session(make_user(), ttl=60)).kind == "user"
    with pytest.raises(TokenInvalid):
        tokens.facts(device_token(TokenService(OTHER_SECRET, clock=clock)))


# ---------------------------------------------- identities and the configuration ---


@pytest.fixture
def demo() -> Config:
    return load_config(DEFAULT_CONFIG_PATH, env={})


@pytest.fixture
def configured(demo: Config, clock: Clock) -> TokenService:
    return TokenService(SECRET, clock=clock, directory=Directory(demo))


def without_user(config: Config, username: str) -> Config:
    return msgspec.structs.replace(config, users=tuple(u for u in config.users if u.username != username))


def with_grants(config: Config, username: str, grants: tuple[str, ...]) -> Config:
    users = tuple(msgspec.structs.replace(u, grants=grants) if u.username == username else u for u in config.users)
    return msgspec.structs.replace(config, users=users)


def test_a_session_has_the_grants_the_configuration_gives_now(configured: TokenService, demo: Config) -> None:
    mayor = demo.user("mayor")
    assert mayor is not None
    cookie = configured.issue_session(msgspec.structs.replace(mayor, grants=("publish", "subscribe", "moderate", "issue", "admin")), ttl=60)
    assert configured.verify_session(cookie).grants == frozenset(mayor.grants)  # not the cookie's "admin"


def test_a_user_taken_out_of_the_configuration_is_refused(configured: TokenService, demo: Config) -> None:
    mayor = demo.user("mayor")
    assert mayor is not None
    cookie = configured.issue_session(mayor, ttl=60)
    assert configured.directory is not None
    configured.directory.load(without_user(demo, "mayor"))
    with pytest.raises(AccessWithdrawn) as info:
        configured.verify_session(cookie)
    assert info.value.code == "access_withdrawn"


def test_a_device_named_like_a_user_is_not_that_user(configured: TokenService) -> None:
    token = configured.issue_device_token(identity="mayor", site="office", room="consultation", grants=["issue"], ttl=60)
    identity = configured.verify_device_token(token)
    assert identity.identity == "device:mayor" and identity.subject == "mayor" and identity.kind == "device"
    other = configured.issue_device_token(identity="levee-phone", site="linjiang", room="consultation", grants=[], ttl=60)
    assert configured.verify_device_token(other).identity == "levee-phone"


def test_a_device_token_whose_subject_carries_the_device_prefix_is_refused(configured: TokenService) -> None:
    with pytest.raises(TokenInvalid):
        configured.verify_device_token(forged(configured, sub="device:mayor"))


def test_a_device_of_a_site_taken_out_of_the_configuration_is_refused(configured: TokenService, demo: Config) -> None:
    token = configured.issue_device_token(identity="levee-phone", site="linjiang", room="consultation", grants=[], ttl=60)
    assert configured.directory is not None
    configured.directory.load(msgspec.structs.replace(demo, sites=tuple(s for s in demo.sites if s.id != "linjiang")))
    with pytest.raises(AccessWithdrawn):
        configured.verify_device_token(token)


def test_recheck_ends_a_live_identity_that_expired_was_revoked_or_lost_a_grant(
    configured: TokenService, demo: Config, clock: Clock
) -> None:
    mayor = demo.user("mayor")
    assert mayor is not None and configured.directory is not None
    live = configured.verify_session(configured.issue_session(mayor, ttl=600))
    assert configured.recheck(live) == live
    configured.directory.load(with_grants(demo, "mayor", ("publish", "subscribe", "moderate", "issue", "admin")))
    assert configured.recheck(live).can("admin")  # a grant added ends nothing
    configured.directory.load(with_grants(demo, "mayor", ("publish", "subscribe")))
    with pytest.raises(AccessWithdrawn):
        configured.recheck(live)
    configured.directory.load(demo)
    configured.revocations.remember(RevocationRecord(token_id=live.token_id, expires_at=live.expires_at, revoked_at=START))
    with pytest.raises(TokenRevoked):
        configured.recheck(live)
    clock.now += 600
    with pytest.raises(TokenExpired):
        configured.recheck(live)


def test_device_token_is_refused_in_another_room(tokens: TokenService) -> None:
    identity = tokens.verify_device_token(device_token(tokens))
    identity.check_room("consultation")
    with pytest.raises(WrongRoom) as info:
        identity.check_room("command")
    assert info.value.code == "wrong_room"


def test_user_limited_to_some_rooms_is_refused_elsewhere(tokens: TokenService) -> None:
    identity = tokens.verify_session(tokens.issue_session(make_user(rooms=("command",)), ttl=60))
    identity.check_room("command")
    with pytest.raises(WrongRoom):
        identity.check_room("consultation")


def test_token_with_an_unknown_grant_is_refused(tokens: TokenService) -> None:
    claims = {**claims_of(device_token(tokens)), "grants": ["publish", "launch_missiles"]}
    with pytest.raises(TokenInvalid):
        tokens.verify_device_token(jwt.encode(claims, SECRET, algorithm="HS256"))


def test_token_without_expiry_is_refused(tokens: TokenService) -> None:
    claims = claims_of(device_token(tokens))
    del claims["exp"]
    with pytest.raises(TokenInvalid):
        tokens.verify_device_token(jwt.encode(claims, SECRET, algorithm="HS256"))


def test_issuing_refuses_unknown_grants_and_non_positive_ttl(tokens: TokenService) -> None:
    with pytest.raises(TokenRequestError):
        tokens.issue_device_token(identity="x", site="s", room="r", grants=["fly"], ttl=60)
    with pytest.raises(TokenRequestError):
        tokens.issue_device_token(identity="x", site="s", room="r", grants=["publish"], ttl=0)


def test_missing_grant_is_forbidden(tokens: TokenService) -> None:
    identity = tokens.verify_device_token(device_token(tokens))
    identity.require("publish")
    with pytest.raises(Forbidden) as info:
        identity.require("moderate")
    assert info.value.code == "forbidden"


def test_short_signing_secret_is_refused() -> None:
    with pytest.raises(WeakSecret):
        TokenService(b"short")


# --------------------------------------------------------------- passwords ---


def test_right_password_verifies(cheap_hasher: argon2.PasswordHasher) -> None:
    verifier = PasswordVerifier(cheap_hasher)
    verifier.verify(make_user(verifier.hash("demomayor")), "demomayor")


def test_wrong_password_is_bad_credentials(cheap_hasher: argon2.PasswordHasher) -> None:
    verifier = PasswordVerifier(cheap_hasher)
    with pytest.raises(BadCredentials) as info:
        verifier.verify(make_user(verifier.hash("demomayor")), "demomayer")
    assert info.value.code == "bad_credentials"


def test_unknown_user_is_bad_credentials_even_with_a_password(cheap_hasher: argon2.PasswordHasher) -> None:
    with pytest.raises(BadCredentials):
        PasswordVerifier(cheap_hasher).verify(None, "anything")


def test_unusable_stored_hash_is_bad_credentials(cheap_hasher: argon2.PasswordHasher) -> None:
    with pytest.raises(BadCredentials):
        PasswordVerifier(cheap_hasher).verify(make_user("$argon2id$garbage"), "demomayor")


# ---------------------------------------------------------- signing secret ---


def test_secret_from_the_environment_is_used(tmp_path: Path) -> None:
    assert load_secret(tmp_path, {"SERVER_SECRET": "s" * 40}) == b"s" * 40
    assert not (tmp_path / "secret.key").exists()


def test_short_secret_from_the_environment_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SecretTooShort, match="SERVER_SECRET"):
        load_secret(tmp_path, {"SERVER_SECRET": "tiny"})


def test_secret_file_named_in_the_environment_is_read(tmp_path: Path) -> None:
    path = tmp_path / "mounted-secret"
    path.write_text("f" * 64 + "\n")
    assert load_secret(tmp_path, {"SERVER_SECRET_FILE": str(path)}) == b"f" * 64


def test_unreadable_secret_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SecretUnreadable, match="absent"):
        load_secret(tmp_path, {"SERVER_SECRET_FILE": str(tmp_path / "absent")})


def test_secret_is_generated_once_with_owner_only_permissions(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    first = load_secret(data_dir, {})
    assert len(first) == 64
    assert stat.S_IMODE((data_dir / "secret.key").stat().st_mode) == 0o600
    assert load_secret(data_dir, {}) == first


# --------------------------------------------------------------------- TLS ---


def test_self_signed_certificate_covers_the_hosts_and_is_reused(tmp_path: Path) -> None:
    cert_path, key_path = ensure_self_signed(tmp_path, ["command.example", "192.0.2.7"])
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"command.example", "localhost"} <= set(san.get_values_for_type(x509.DNSName))
    assert {"192.0.2.7", "127.0.0.1"} <= {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert cert.not_valid_after_utc > datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=300)
    before = cert_path.read_bytes()
    assert ensure_self_signed(tmp_path, ["command.example"]) == (cert_path, key_path)
    assert cert_path.read_bytes() == before


def test_self_signed_certificate_is_replaced_when_a_new_host_is_wanted(tmp_path: Path) -> None:
    cert_path, _ = ensure_self_signed(tmp_path, ["a.example"])
    before = cert_path.read_bytes()
    ensure_self_signed(tmp_path, ["b.example"])
    assert cert_path.read_bytes() != before


def test_self_signed_settings_give_a_server_ssl_context(tmp_path: Path) -> None:
    context = server_ssl_context(ServerSettings(self_signed_tls=True, public_host="wall.example"), tmp_path)
    assert isinstance(context, ssl.SSLContext)
    assert (tmp_path / "tls" / "self-signed.crt").is_file()


def test_configured_certificate_files_give_a_server_ssl_context(tmp_path: Path) -> None:
    cert_path, key_path = ensure_self_signed(tmp_path / "elsewhere", ["x.example"])
    settings = ServerSettings(tls_cert=str(cert_path), tls_key=str(key_path))
    assert isinstance(server_ssl_context(settings, tmp_path), ssl.SSLContext)


def test_plain_http_has_no_ssl_context(tmp_path: Path) -> None:
    assert server_ssl_context(ServerSettings(), tmp_path) is None


def test_missing_certificate_file_is_a_clear_error(tmp_path: Path) -> None:
    settings = ServerSettings(tls_cert=str(tmp_path / "nope.crt"), tls_key=str(tmp_path / "nope.key"))
    with pytest.raises(TlsError, match="tls_cert: file not found"):
        server_ssl_context(settings, tmp_path)


def test_a_rotated_secret_keeps_what_the_previous_one_signed_valid_until_it_expires() -> None:
    old, new = b"o" * 40, b"n" * 40
    before = TokenService(old)
    token = before.issue_device_token(identity="levee-phone", site="mobile01", room="consultation", grants=["publish"], ttl=600)
    rotating = TokenService(new, previous_secrets=[old])
    assert rotating.verify_device_token(token).identity == "levee-phone"
    fresh = rotating.issue_device_token(identity="levee-phone", site="mobile01", room="consultation", grants=["publish"], ttl=600)
    with pytest.raises(TokenInvalid):
        before.verify_device_token(fresh)  # new tokens are signed with the new secret only
    with pytest.raises(TokenInvalid):
        TokenService(new).verify_device_token(token)  # once the previous secret is dropped, its tokens are refused


def test_previous_secrets_come_from_the_environment_or_a_file(tmp_path: Path) -> None:
    assert load_previous_secrets({}) == ()
    assert load_previous_secrets({"SERVER_SECRET_PREVIOUS": "a" * 32 + ", " + "b" * 32}) == (b"a" * 32, b"b" * 32)
    listed = tmp_path / "previous"
    listed.write_text("c" * 32 + "\n" + "d" * 32 + "\n")
    assert load_previous_secrets({"SERVER_SECRET_PREVIOUS_FILE": str(listed)}) == (b"c" * 32, b"d" * 32)
    with pytest.raises(SecretTooShort):
        load_previous_secrets({"SERVER_SECRET_PREVIOUS": "short"})
