"""Flower's API answers the right password and nobody else."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from base64 import b64encode

import pytest

from support.fleet import wait_for

pytestmark = pytest.mark.fleet


def get(fleet, path, auth=None) -> tuple[int, bytes]:
    headers = {"Authorization": "Basic " + b64encode(":".join(auth).encode()).decode()} if auth else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(fleet.flower_url + path, headers=headers), timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_api_workers_lists_the_worker_with_the_password(fleet, flower_auth):
    def listed():
        status, body = get(fleet, "/api/workers?refresh=1", flower_auth)
        assert status == 200
        return json.loads(body)

    workers = wait_for(listed, 30, what="a worker in /api/workers")
    assert any(name.startswith("fleet@") for name in workers)


def test_api_workers_answers_401_without_auth(fleet):
    assert get(fleet, "/api/workers")[0] == 401


def test_api_workers_answers_401_with_a_wrong_password(fleet, flower_auth):
    assert get(fleet, "/api/workers", (flower_auth[0], "not-" + flower_auth[1]))[0] == 401


def test_flower_shows_a_task_by_its_readable_name_and_arguments(fleet, flower_auth):
    from tasks.smoke import square

    task_id = square.delay(12).id
    square.AsyncResult(task_id).get(timeout=30)

    def seen():
        status, body = get(fleet, "/api/tasks?taskname=cvfleet.smoke.square&limit=100", flower_auth)
        assert status == 200
        tasks = json.loads(body)
        return tasks if tasks.get(task_id, {}).get("state") == "SUCCESS" else None

    task = wait_for(seen, 30, what="the task's success in /api/tasks")[task_id]
    assert task["name"] == "cvfleet.smoke.square" and task["args"] == "(12,)" and task["state"] == "SUCCESS"
