"""The Celery app every worker and client shares.

Settings that decide whether work is lost (docs/design.md says why): JSON only, late acks with
redelivery when a worker dies, one reserved task per process, a visibility timeout longer
than the longest task, results that expire, and task events on so Flower sees every task.

Over rediss:// (a fleet that listens on a network) the broker and the result backend verify Redis's
certificate against the fleet's CA. Every message carries the cvfleet protocol number, and a
worker runs only messages of its own (workers/protocol.py).
"""

from __future__ import annotations

import os
from datetime import timedelta

from celery import Celery
from celery.signals import before_task_publish, worker_process_init
from kombu import Queue

from workers import config, protocol

QUEUES = ("video", "detect", "train")
TASK_MODULES = ["tasks.smoke", "tasks.annotate.steps", "tasks.annotate.stager", "tasks.watchdog", "tasks.trial"]


def make_app(cfg: config.Config | None = None) -> Celery:
    cfg = cfg or config.load()
    app = Celery("cvfleet", broker=cfg.redis_url, backend=cfg.redis_url, include=TASK_MODULES)
    vt = {"visibility_timeout": cfg.visibility_timeout}
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        event_serializer="json",
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=cfg.task_time_limit,
        task_soft_time_limit=cfg.task_time_limit - min(30, max(cfg.task_time_limit // 10, 1)),
        # Messages of a worker that died whole (main process too) come back after the visibility
        # timeout, found by a scan every 10 s (kombu's default throttle makes that ~100 s).
        broker_transport_options={**vt, "unacked_restore_interval": 10, "unacked_restore_throttle": 1},
        result_backend_transport_options=dict(vt),
        visibility_timeout=cfg.visibility_timeout,
        result_expires=timedelta(days=7),
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_track_started=True,
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="video",
        task_routes={
            "cvfleet.video.*": {"queue": "video"},
            "cvfleet.detect.*": {"queue": "detect"},
            "cvfleet.train.*": {"queue": "train"},
            "cvfleet.smoke.*": {"queue": "video"},
        },
        broker_connection_retry_on_startup=True,
        worker_max_memory_per_child=2_000_000,  # KiB; a child past 2 GB is replaced after its task
        # A new pool child loads the model before it says it is up (prewarm); on a loaded machine that
        # took longer than Celery's 4 s, and the worker killed each replacement child in turn.
        worker_proc_alive_timeout=60,
        worker_hijack_root_logger=False,
    )
    if cfg.redis_tls:
        app.conf.update(broker_use_ssl=cfg.redis_ssl_options(), redis_backend_use_ssl=cfg.redis_ssl_options())
    app.steps["consumer"].add(protocol.ProtocolGate)
    return app


app = make_app()
before_task_publish.connect(protocol.stamp, weak=False)


@worker_process_init.connect
def _pin_threads(**_):
    """One OpenCV and one BLAS thread per pool process when the pool fills the cores.

    docs/design.md: N processes × 1 thread beat 1 process × N threads for both YOLO and the CNN,
    and two trials that each spawn 2 BLAS threads on 2 cores ran 4× slower. threadpoolctl only
    reaches libraries already loaded, so NumPy is imported first.
    """
    threads = int(os.environ.get("CVFLEET_THREADS_PER_PROCESS", "1"))
    import numpy  # noqa: F401  (load BLAS before limiting it)
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:
        pass


@worker_process_init.connect
def _prewarm(**_):
    """Load the default model now, not in the first task (workers/prewarm.py)."""
    from workers.prewarm import prewarm

    prewarm()
