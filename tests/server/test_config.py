"""Configuration loading: the demo city, and errors that name the file and the bad key."""

from __future__ import annotations

from pathlib import Path

import argon2
import pytest

from server.config import DEFAULT_CONFIG_PATH, ConfigError, load_config

MINIMAL = """
[city]
name_zh = "测试市"
name_en = "Test City"

[[sites]]
id = "office"
name_zh = "应急管理局"
name_en = "Emergency Bureau"
kind = "office"

[[sites]]
id = "county-a"
name_zh = "甲县"
name_en = "County A"
kind = "county"
parent = "office"

[[rooms]]
id = "consultation"
name_zh = "会商室"
name_en = "Consultation"
sites = ["office", "county-a"]
"""

USER = """
[[users]]
username = "{username}"
password_hash = "{password_hash}"
display_name = "Someone"
site = "{site}"
grants = ["publish"]
rooms = {rooms}
"""


def write(tmp_path: Path, text: str) -> Path:
    """Write a config file and return its path."""
    path = tmp_path / "city.toml"
    path.write_text(text, encoding="utf-8")
    return path


def user(username: str = "alice", site: str = "office", rooms: str = "[]", password_hash: str = "$argon2id$x") -> str:
    """A [[users]] entry."""
    return USER.format(username=username, site=site, rooms=rooms, password_hash=password_hash)


def site(site_id: str, parent: str | None, kind: str = "county") -> str:
    """A [[sites]] entry."""
    parent_line = f'parent = "{parent}"' if parent else ""
    return f'\n[[sites]]\nid = "{site_id}"\nname_zh = "某地"\nname_en = "Somewhere"\nkind = "{kind}"\n{parent_line}\n'


def error_for(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    """Load a config expected to be bad and return the error message."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {})
    message = str(info.value)
    assert message.startswith(str(path) + ": ")
    return message


def test_minimal_config_loads_with_server_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), env={})
    assert config.server.host == "127.0.0.1"
    assert config.server.port == 8080
    assert config.city.timezone == "Asia/Shanghai"
    assert config.room("consultation") is not None
    assert config.users == ()


def test_unknown_field_is_named_with_its_path(tmp_path: Path) -> None:
    text = MINIMAL.replace('sites = ["office", "county-a"]', 'sites = ["office"]\ncolour = "red"')
    message = error_for(tmp_path, text)
    assert "unknown field `colour`" in message
    assert "$.rooms[0]" in message


def test_unknown_parent_is_named_with_its_index(tmp_path: Path) -> None:
    message = error_for(tmp_path, MINIMAL + site("county-b", "x"))
    assert "sites[2].parent: unknown site 'x'" in message


def test_duplicate_site_id_is_refused(tmp_path: Path) -> None:
    message = error_for(tmp_path, MINIMAL + site("county-a", "office"))
    assert "sites[2].id: duplicate site 'county-a'" in message


def test_duplicate_username_is_refused(tmp_path: Path) -> None:
    message = error_for(tmp_path, MINIMAL + user("alice") + user("alice"))
    assert "users[1].username: duplicate user 'alice'" in message


def test_cycle_in_the_site_tree_is_refused(tmp_path: Path) -> None:
    text = MINIMAL + site("loop-a", "loop-b") + site("loop-b", "loop-a")
    message = error_for(tmp_path, text)
    assert "sites[2].parent: cycle" in message
    assert "sites[3].parent: cycle" in message


def test_site_that_is_its_own_parent_is_a_cycle(tmp_path: Path) -> None:
    message = error_for(tmp_path, MINIMAL + site("selfish", "selfish"))
    assert "sites[2].parent: cycle" in message


def test_room_naming_an_unknown_site_is_refused(tmp_path: Path) -> None:
    message = error_for(tmp_path, MINIMAL.replace('"county-a"]', '"county-z"]'))
    assert "rooms[0].sites[1]: unknown site 'county-z'" in message


def test_user_with_unknown_site_or_room_is_refused(tmp_path: Path) -> None:
    message = error_for(tmp_path, MINIMAL + user(site="nowhere", rooms='["attic"]'))
    assert "users[0].site: unknown site 'nowhere'" in message
    assert "users[0].rooms[0]: unknown room 'attic'" in message


def test_plain_text_password_is_refused(tmp_path: Path) -> None:
    message = error_for(tmp_path, MINIMAL + user(password_hash="hunter2"))
    assert "users[0].password_hash: not an argon2 hash" in message


def test_unknown_grant_is_refused(tmp_path: Path) -> None:
    message = error_for(tmp_path, MINIMAL + user().replace('["publish"]', '["publish", "launch"]'))
    assert "$.users[0].grants[1]" in message


def test_unknown_site_kind_is_refused(tmp_path: Path) -> None:
    message = error_for(tmp_path, MINIMAL + site("county-b", "office", kind="province"))
    assert "$.sites[2].kind" in message


def test_ids_must_be_lowercase_slugs(tmp_path: Path) -> None:
    message = error_for(tmp_path, MINIMAL + site("County B", "office"))
    assert "$.sites[2].id" in message


def test_tls_cert_without_key_is_refused(tmp_path: Path) -> None:
    message = error_for(tmp_path, MINIMAL + '\n[server]\ntls_cert = "cert.pem"\n')
    assert "server.tls_cert: tls_cert and tls_key must be given together" in message


def test_port_out_of_range_in_the_file_is_refused(tmp_path: Path) -> None:
    message = error_for(tmp_path, MINIMAL + "\n[server]\nport = 70000\n")
    assert "$.server.port" in message


def test_unknown_timezone_is_refused(tmp_path: Path) -> None:
    message = error_for(tmp_path, MINIMAL.replace('name_en = "Test City"', 'name_en = "T"\ntimezone = "Mars/Olympus"'))
    assert "city.timezone: unknown time zone 'Mars/Olympus'" in message


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    message = error_for(tmp_path, MINIMAL + "\n[[rooms]\n")
    assert "invalid TOML" in message


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="absent.toml: file not found"):
        load_config(tmp_path / "absent.toml", env={})


def test_environment_overrides_server_settings(tmp_path: Path) -> None:
    env = {"PORT": "9443", "HOST": "0.0.0.0", "REDIS_URL": "redis://cache:6379/0", "DATA_DIR": "/srv/data"}
    config = load_config(write(tmp_path, MINIMAL + "\n[server]\nport = 8000\n"), env=env)
    assert config.server.port == 9443
    assert config.server.host == "0.0.0.0"
    assert config.server.redis_url == "redis://cache:6379/0"
    assert config.server.data_dir == "/srv/data"


@pytest.mark.parametrize("port", ["eighty", "0", "65536"])
def test_bad_port_in_the_environment_names_port(tmp_path: Path, port: str) -> None:
    message = error_for(tmp_path, MINIMAL, env={"PORT": port})
    assert "PORT" in message


def test_demo_config_is_the_default_and_loads(tmp_path: Path) -> None:
    assert DEFAULT_CONFIG_PATH.is_file()
    config = load_config(DEFAULT_CONFIG_PATH, env={})
    kinds = [s.kind for s in config.sites]
    assert kinds.count("county") == 11
    assert kinds.count("mobile") == 4
    assert kinds.count("office") == 1
    linkage = {s.id for s in config.sites if s.kind == "linkage"}
    assert {"police110", "fire119", "ambulance120", "traffic122"} <= linkage
    assert config.room("consultation") is not None
    assert config.room("command") is not None
    assert (config.server.host, config.server.port, config.server.data_dir) == ("127.0.0.1", 8080, "var")


def test_demo_consultation_room_gathers_counties_mobiles_and_linkage_units() -> None:
    config = load_config(DEFAULT_CONFIG_PATH, env={})
    room = config.room("consultation")
    assert room is not None
    wanted = {s.id for s in config.sites if s.kind in ("county", "mobile", "linkage", "office", "command_centre")}
    assert wanted <= set(room.sites)


def test_demo_users_have_the_documented_passwords() -> None:
    config = load_config(DEFAULT_CONFIG_PATH, env={})
    mayor = config.user("mayor")
    assert mayor is not None
    assert set(mayor.grants) == {"publish", "subscribe", "moderate", "issue"}
    assert argon2.PasswordHasher().verify(mayor.password_hash, "demomayor")
    assert [u.username for u in config.users if u.username.startswith("county")] == [
        f"county{i:02d}" for i in range(1, 12)
    ]
    chief = config.user("chief")
    assert chief is not None and "admin" in chief.grants


def test_lookups_of_unknown_ids_return_none() -> None:
    config = load_config(DEFAULT_CONFIG_PATH, env={})
    assert config.room("attic") is None
    assert config.user("nobody") is None
    assert config.group("nothing") is None


GROUP = '\n[[groups]]\nid = "{id}"\nname_zh = "组"\nname_en = "Group"\nsites = {sites}\n'
SCHEDULE = '\n[[rollcall_schedules]]\nid = "duty"\nname_zh = "值班点名"\nname_en = "Duty check"\ncron = "{cron}"\n{target}\n{extra}\n'


def test_groups_and_rollcall_schedules_load(tmp_path: Path) -> None:
    text = MINIMAL + GROUP.format(id="counties", sites='["county-a"]') + SCHEDULE.format(
        cron="30 17 * * *", target='group = "counties"', extra='window = 20\nroom = "consultation"')
    config = load_config(write(tmp_path, text), env={})
    assert config.group("counties").sites == ("county-a",)
    assert config.rollcall_schedules[0].window == 20 and config.rollcall_schedules[0].mode == "sequence"


def test_a_group_naming_an_unknown_site_is_refused(tmp_path: Path) -> None:
    message = error_for(tmp_path, MINIMAL + GROUP.format(id="g", sites='["nowhere"]'))
    assert "groups[0].sites[0]: unknown site 'nowhere'" in message


def test_a_schedule_with_a_bad_cron_rule_unknown_group_and_room_names_each_key(tmp_path: Path) -> None:
    message = error_for(tmp_path, MINIMAL + SCHEDULE.format(
        cron="99 17 * * *", target='group = "missing"', extra='room = "attic"\ntimezone = "Mars/Base"'))
    for key in ("rollcall_schedules[0].cron", "rollcall_schedules[0].group: unknown group 'missing'",
                "rollcall_schedules[0].room: unknown room 'attic'", "rollcall_schedules[0].timezone"):
        assert key in message


def test_a_schedule_must_name_exactly_one_target_and_no_unknown_field(tmp_path: Path) -> None:
    message = error_for(tmp_path, MINIMAL + SCHEDULE.format(cron="30 17 * * *", target='sites = ["county-a"]\nsubtree = "office"', extra=""))
    assert "rollcall_schedules[0]: give exactly one of sites, group or subtree" in message
    message = error_for(tmp_path, MINIMAL + SCHEDULE.format(cron="30 17 * * *", target='sites = ["county-a"]', extra="windw = 3"))
    assert "windw" in message


def test_ice_servers_and_the_turn_credential_lifetime_come_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '\n[server]\nice_servers = ["stun:file.example:3478"]\n')
    assert load_config(path, env={}).server.ice_servers == ("stun:file.example:3478",)
    assert load_config(path, env={}).server.turn_credential_ttl == 86400
    env = {"ICE_SERVERS": " turn:t.example:3478?transport=udp , turns:t.example:5349?transport=tcp,", "TURN_CREDENTIAL_TTL": "7200"}
    settings = load_config(path, env=env).server
    assert settings.ice_servers == ("turn:t.example:3478?transport=udp", "turns:t.example:5349?transport=tcp")
    assert settings.turn_credential_ttl == 7200
    assert load_config(path, env={"ICE_SERVERS": ""}).server.ice_servers == ()


def test_an_ice_server_that_is_not_a_stun_or_turn_url_is_refused(tmp_path: Path) -> None:
    message = error_for(tmp_path, MINIMAL, env={"ICE_SERVERS": "stun:ok.example,http://turn.example"})
    assert "server.ice_servers[1]: not a stun:, stuns:, turn: or turns: URL: 'http://turn.example'" in message
    assert "TURN_CREDENTIAL_TTL" in error_for(tmp_path, MINIMAL, env={"TURN_CREDENTIAL_TTL": "a day"})
    assert "turn_credential_ttl" in error_for(tmp_path, MINIMAL, env={"TURN_CREDENTIAL_TTL": "5"})


def test_browser_security_settings_from_the_file_and_the_environment(tmp_path: Path) -> None:
    server = '\n[server]\nallowed_origins = ["https://ops.example"]\nsecure_cookies = true\ntrusted_proxies = ["10.0.0.0/8"]\n'
    config = load_config(write(tmp_path, MINIMAL + server), env={})
    assert config.server.allowed_origins == ("https://ops.example",)
    assert config.server.secure_cookies is True and config.server.trusted_proxies == ("10.0.0.0/8",)
    env = {"ALLOWED_ORIGINS": "https://a.example, http://b.example:8080", "SECURE_COOKIES": "0", "TRUSTED_PROXIES": "127.0.0.1"}
    config = load_config(write(tmp_path, MINIMAL + server), env=env)
    assert config.server.allowed_origins == ("https://a.example", "http://b.example:8080")
    assert config.server.secure_cookies is False and config.server.trusted_proxies == ("127.0.0.1",)
    defaults = load_config(write(tmp_path, MINIMAL), env={}).server
    assert defaults.allowed_origins == () and defaults.secure_cookies is False and defaults.trusted_proxies == ()


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"ALLOWED_ORIGINS": "https://ok.example,ops.example"}, "server.allowed_origins[1]"),
        ({"ALLOWED_ORIGINS": "https://ops.example/path"}, "server.allowed_origins[0]"),
        ({"ALLOWED_ORIGINS": "*"}, "server.allowed_origins[0]"),
        ({"TRUSTED_PROXIES": "proxy.local"}, "server.trusted_proxies[0]"),
        ({"SECURE_COOKIES": "maybe"}, "SECURE_COOKIES"),
    ],
)
def test_bad_browser_security_settings_name_their_key(tmp_path: Path, env: dict[str, str], key: str) -> None:
    assert key in error_for(tmp_path, MINIMAL, env=env)


def test_the_duty_report_is_due_at_1730_from_the_counties_unless_configured(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), env={})
    assert (config.duty.deadline, config.duty.kinds, config.duty.sites, config.duty.timezone) == ("17:30", ("county",), (), None)
    assert (config.duty.sign_off, config.duty.remind_before) == (False, 30.0)
    text = MINIMAL + '\n[duty]\ndeadline = "18:00"\nkinds = ["county", "township"]\nsites = ["office"]\ntimezone = "Asia/Urumqi"\n'
    config = load_config(write(tmp_path, text), env={"DUTY_DEADLINE": "17:45:30"})
    assert (config.duty.deadline, config.duty.kinds, config.duty.sites) == ("17:45:30", ("county", "township"), ("office",))


def test_a_bad_duty_section_is_refused_with_its_key(tmp_path: Path) -> None:
    assert "$.duty.deadline" in error_for(tmp_path, MINIMAL + '\n[duty]\ndeadline = "25:00"\n')
    assert "duty.sites[0]: unknown site 'atlantis'" in error_for(tmp_path, MINIMAL + '\n[duty]\nsites = ["atlantis"]\n')
    assert "duty.timezone: unknown time zone 'Mars/Olympus'" in error_for(tmp_path, MINIMAL + '\n[duty]\ntimezone = "Mars/Olympus"\n')
    assert "$.duty.deadline" in error_for(tmp_path, MINIMAL, env={"DUTY_DEADLINE": "5pm"})
    assert "$.duty.remind_before" in error_for(tmp_path, MINIMAL + "\n[duty]\nremind_before = -5\n")


def test_directive_reminders_before_a_deadline_are_set_per_class(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), env={})
    assert [config.command.remind_before.of(c) for c in ("mandatory", "guidance", "reference", "other")] == [30, 15, 0, 0]
    config = load_config(write(tmp_path, MINIMAL + "\n[command.remind_before]\nmandatory = 60\nreference = 5\n"), env={})
    assert (config.command.remind_before.mandatory, config.command.remind_before.reference) == (60, 5)
    assert "$.command.remind_before.guidance" in error_for(tmp_path, MINIMAL + "\n[command.remind_before]\nguidance = -1\n")
    assert "$.command.remind_before" in error_for(tmp_path, MINIMAL + "\n[command.remind_before]\nurgent = 5\n")
