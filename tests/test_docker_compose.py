"""docker-compose.yml is valid, keeps Redis private and behind a password, and runs real CLI commands."""

from __future__ import annotations

import shutil
import subprocess

import click
import pytest
import yaml

from workers.cli import cli

from support.fleet import ROOT

ENV = {"REDIS_PASSWORD": "test-redis-secret", "FLOWER_PASSWORD": "test-flower-secret", "PATH": "/usr/bin:/bin"}


@pytest.fixture(scope="module")
def config() -> dict:
    assert shutil.which("docker-compose"), "docker-compose is missing: `make test` installs it with apt-get"
    out = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def test_docker_compose_config_accepts_the_file(config):
    assert {"redis", "video", "detect", "train", "flower"} <= set(config["services"])


def test_redis_publishes_no_host_port_and_requires_the_password(config):
    redis = config["services"]["redis"]
    assert "ports" not in redis
    assert "--requirepass" in " ".join(redis["command"]) and "--appendonly yes" in " ".join(redis["command"])
    for name in ("video", "detect", "train", "flower"):
        assert f":{ENV['REDIS_PASSWORD']}@redis:6379" in config["services"][name]["environment"]["CVFLEET_REDIS_URL"]
        assert config["services"][name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_missing_passwords_are_refused():
    out = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0 and "REDIS_PASSWORD" in out.stderr


def test_one_worker_service_per_queue_without_container_names(config):
    queues = {}
    for name in ("video", "detect", "train"):
        service = config["services"][name]
        assert "container_name" not in service
        cmd = service["command"]
        queues[name] = cmd[cmd.index("--queues") + 1]
    assert queues == {"video": "video", "detect": "detect", "train": "train"}


def test_every_service_command_parses_with_the_cvfleet_cli(config):
    for name in ("video", "detect", "train", "flower"):
        cmd = config["services"][name]["command"]
        assert cmd[0] == "cvfleet"
        sub = cli.get_command(click.Context(cli), cmd[1])
        assert sub is not None, f"{name}: no `cvfleet {cmd[1]}`"
        sub.make_context(cmd[1], list(cmd[2:]))  # raises on an unknown option or bad value


def targets(service: dict) -> list[str]:
    """Where a service's volumes are mounted (docker-compose prints `source:target:mode` or a mapping)."""
    return [v["target"] if isinstance(v, dict) else v.split(":")[1] for v in service.get("volumes", [])]


def test_detect_mounts_nothing_and_only_the_video_service_sees_the_input(config):
    services = config["services"]
    assert targets(services["detect"]) == []  # its frames come through Redis
    assert {name for name, service in services.items() if "/input" in targets(service)} == {"video"}


def test_an_extra_machines_compose_file_holds_one_worker_that_needs_only_the_redis_url():
    env = {"CVFLEET_REDIS_URL": "rediss://:secret@10.0.0.5:6399/0", "PATH": "/usr/bin:/bin"}
    worker_file = str(ROOT / "docker-compose.worker.yml")
    out = subprocess.run(
        ["docker-compose", "-f", worker_file, "config"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    assert list(services) == ["worker"]
    assert services["worker"]["environment"]["CVFLEET_REDIS_URL"] == env["CVFLEET_REDIS_URL"]
    assert targets(services["worker"]) == ["/run/cvfleet/ca.crt"]
    refused = subprocess.run(
        ["docker-compose", "-f", worker_file, "config"], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True
    )
    assert refused.returncode != 0 and "CVFLEET_REDIS_URL" in refused.stderr
