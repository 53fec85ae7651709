"""compose.yaml describes the multi-node deployment: Redis with AOF, two nodes, TURN."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.config import DEFAULT_CONFIG_PATH, load_config
from server.ice_servers import is_turn

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ("server-a", "server-b")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _command_text(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def test_compose_declares_redis_two_server_nodes_and_coturn(compose: dict[str, Any]) -> None:
    assert {"redis", "server-a", "server-b", "coturn"} <= set(compose["services"])


def test_redis_keeps_an_append_only_file_on_a_named_volume(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert "--appendonly yes" in _command_text(redis)
    data_volumes = [spec.split(":")[0] for spec in redis["volumes"] if spec.endswith(":/data")]
    assert data_volumes and set(data_volumes) <= set(compose["volumes"])
    assert "healthcheck" in redis


@pytest.mark.parametrize("name", SERVERS)
def test_each_server_node_uses_the_shared_redis_and_waits_for_it(
    compose: dict[str, Any], name: str
) -> None:
    server = compose["services"][name]
    env = _environment(server)
    assert env["REDIS_URL"] == "redis+sentinel://sentinel:26379/cp-primary?wait_replicas=1"
    assert env["NODE_ID"] == name
    assert server["build"]["dockerfile"] == "Dockerfile"
    assert server["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "sentinel" in server["depends_on"]
    assert "network_mode" not in server
    assert env["SERVER_SECRET"].startswith("${SERVER_SECRET")


def test_the_server_nodes_have_distinct_ids_and_published_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert len({_environment(services[name])["NODE_ID"] for name in SERVERS}) == 2
    published = [port.split(":")[0] for name in SERVERS for port in services[name]["ports"]]
    assert published == ["8080", "8081"]
    for name in SERVERS:
        env = _environment(services[name])
        assert services[name]["ports"] == [f"{env['PORT']}:{env['PORT']}"]


def test_each_node_is_reached_by_the_other_at_its_own_service_and_port(compose: dict[str, Any]) -> None:
    for name in SERVERS:
        env = _environment(compose["services"][name])
        assert env["NODE_URL"] == f"http://{name}:{env['PORT']}", "signaling is relayed to the room's node there"
        assert env["PUBLIC_URL"].endswith(f":{env['PORT']}"), "where a page reconnects when its node is gone"


def test_two_replicas_follow_the_primary_and_the_sentinel_watches_it_under_the_name_the_nodes_ask_for(
    compose: dict[str, Any], tmp_path: Path,
) -> None:
    services = compose["services"]
    for name in ("redis-replica-1", "redis-replica-2"):
        command = _command_text(services[name])
        assert "--replicaof redis 6379" in command and "--appendonly yes" in command
        assert f"--replica-announce-ip {name}" in command, "the sentinel names a promoted replica by a name the nodes resolve"
    sentinel = _command_text(services["sentinel"])
    assert "sentinel monitor cp-primary redis 6379 1" in sentinel and "--sentinel" in sentinel
    assert "[ -f /data/sentinel.conf ] ||" in sentinel, "what the sentinel learned survives its restart"
    # The sentinel's start-up script, run as the container's shell would: the file it writes.
    script = services["sentinel"]["command"][2].replace("/data/", f"{tmp_path}/").replace("exec redis-server", "echo")
    subprocess.run(["sh", "-c", script], check=True, capture_output=True)
    lines = (tmp_path / "sentinel.conf").read_text().splitlines()
    assert "sentinel monitor cp-primary redis 6379 1" in lines and "port 26379" in lines
    # What the nodes are given is a URL the store takes: the sentinel, the primary's name, one replica per write.
    from server.store import RedisStore

    store = RedisStore(_environment(services["server-a"])["REDIS_URL"], node_id="compose-check")
    assert store.wait_replicas == 1 and "sentinel:26379/cp-primary" in store.safe_url


def test_coturn_listens_on_3478_with_a_secret_from_the_environment(
    compose: dict[str, Any],
) -> None:
    coturn = compose["services"]["coturn"]
    assert {"3478:3478/tcp", "3478:3478/udp"} <= set(coturn["ports"])
    command = _command_text(coturn)
    assert "--realm=" in command
    assert "--static-auth-secret=${TURN_SECRET" in command


def test_the_dockerfile_runs_the_server_on_all_interfaces() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "FROM python:3.11-slim" in dockerfile
    assert "HOST=0.0.0.0" in dockerfile
    assert 'CMD ["python", "-m", "server", "run"]' in dockerfile


def _docker_compose_works() -> bool:
    if shutil.which("docker") is None:
        return False
    for probe in (["docker", "info"], ["docker", "compose", "version"]):
        if subprocess.run(probe, capture_output=True, timeout=30).returncode != 0:
            return False
    return True


def test_docker_compose_accepts_the_file_where_docker_runs() -> None:
    if not _docker_compose_works():
        pytest.skip("no working docker with the compose plugin here")
    result = subprocess.run(
        ["docker", "compose", "-f", str(ROOT / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SERVER_SECRET": "test-only-secret", "TURN_SECRET": "test-only-secret"},
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", SERVERS)
def test_each_node_tells_clients_about_coturn_and_signs_their_credentials_with_its_secret(
    compose: dict[str, Any], name: str
) -> None:
    env = _environment(compose["services"][name])
    assert env["TURN_SECRET"].startswith("${TURN_SECRET")
    substituted = env["ICE_SERVERS"].replace("${TURN_HOST:-localhost}", "localhost")
    urls = load_config(DEFAULT_CONFIG_PATH, env={"ICE_SERVERS": substituted}).server.ice_servers
    assert urls and all(is_turn(url) and url.startswith("turn:localhost:3478?") for url in urls)
    assert {url.partition("?")[2] for url in urls} == {"transport=udp", "transport=tcp"}
    assert "--use-auth-secret" in _command_text(compose["services"]["coturn"])
