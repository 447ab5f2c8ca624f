"""A pickled message never runs: pickle over a broker runs code from whoever can write to Redis."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from kombu import Connection

from support.fleet import wait_for

pytestmark = pytest.mark.fleet


def test_worker_refuses_a_pickled_task_message(fleet):
    from tasks.smoke import square

    task_id = str(uuid.uuid4())
    with Connection(fleet.redis_url) as conn:
        producer = conn.Producer(serializer="pickle")
        producer.publish(
            [[5], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}],
            routing_key="video",
            exchange="",
            serializer="pickle",
            headers={
                "lang": "py",
                "task": "cvfleet.smoke.square",
                "id": task_id,
                "root_id": task_id,
                "parent_id": None,
                "group": None,
                "argsrepr": "(5,)",
                "kwargsrepr": "{}",
                "origin": "test",
                "retries": 0,
                "eta": None,
                "expires": None,
            },
            properties={"correlation_id": task_id, "reply_to": ""},
        )
    log = Path(fleet.fleet_dir) / "worker.log"
    wait_for(lambda: "untrusted content" in log.read_text(), 20, what="the worker refusing the message")
    assert "Refusing to deserialize untrusted content of type pickle" in log.read_text()
    assert square.AsyncResult(task_id).state == "PENDING"  # never ran, no result stored
    assert square.delay(3).get(timeout=30)["square"] == 9  # and the worker still serves JSON
