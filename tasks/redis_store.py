"""The Redis connection tasks and clients share, and the key prefix everything lives under.

Every key cvfleet writes starts with `cvfleet:` (listed in the README); Celery's own keys
(queues, `celery-task-meta-*`, chord counters) keep their names.
"""
from __future__ import annotations

import os

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError
from redis.retry import Retry

from workers.app import app

PREFIX = "cvfleet:"
RECORD_TTL = 30 * 24 * 3600  # seconds a batch or sweep record is kept after its last update

_clients: dict[int, redis.Redis] = {}


def client() -> redis.Redis:
    """One client per process (created after a fork, never inherited).

    Commands retry with backoff for about two minutes, so a Redis restart (AOF reload) delays
    a task's bookkeeping instead of failing the task.
    """
    pid = os.getpid()
    if pid not in _clients:
        _clients.clear()
        _clients[pid] = redis.Redis.from_url(app.conf.broker_url, decode_responses=True,
                                             socket_timeout=30, health_check_interval=30,
                                             retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), 70),
                                             retry_on_error=[ConnectionError, TimeoutError, BusyLoadingError])
    return _clients[pid]


def key(*parts) -> str:
    return PREFIX + ":".join(str(p) for p in parts)


def count_attempt(task_id: str, limit: int = 3) -> bool:
    """True while this task id has run at most `limit` times.

    Redis keeps no redelivery count, so a task that kills its worker every time (out of memory)
    would loop forever under late acks; this counter lets it give up and be recorded as failed.
    The counter outlives any redelivery (3 visibility timeouts) and no more.
    """
    k = key("attempts", task_id)
    pipe = client().pipeline()
    pipe.incr(k)
    pipe.expire(k, 3 * app.conf.visibility_timeout)
    n, _ = pipe.execute()
    return n <= limit


def forget_attempts(task_id: str) -> None:
    """A task that ended needs no counter: drop it, so Redis does not hold one per finished task."""
    client().delete(key("attempts", task_id))
