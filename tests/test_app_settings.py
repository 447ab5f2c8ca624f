"""The Celery settings that decide whether work is lost or let in (docs/design.md)."""

from __future__ import annotations

from workers import config
from workers.app import QUEUES, make_app


def test_time_limits_stay_below_the_visibility_timeout(monkeypatch):
    """A task that outlives the visibility timeout would be handed to a second worker while it runs."""
    from workers import config
    from workers.app import make_app

    for vt in (20, 120, 3600, 86400):
        monkeypatch.setenv("CVFLEET_VISIBILITY_TIMEOUT", str(vt))
        monkeypatch.delenv("CVFLEET_TASK_TIME_LIMIT", raising=False)
        conf = make_app(config.load()).conf
        assert 0 < conf.task_soft_time_limit < conf.task_time_limit < vt
        assert conf.broker_transport_options["visibility_timeout"] == vt
        assert conf.result_backend_transport_options["visibility_timeout"] == vt


def test_json_only_late_acks_one_reserved_task_and_events_on():
    conf = make_app(config.load()).conf
    assert conf.accept_content == ["json"] and conf.task_serializer == "json" and conf.result_serializer == "json"
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
    assert conf.worker_send_task_events and conf.task_send_sent_event
    assert conf.result_expires.total_seconds() > 0 and conf.broker_connection_retry_on_startup
    assert [q.name for q in conf.task_queues] == list(QUEUES) == ["video", "detect", "train"]
