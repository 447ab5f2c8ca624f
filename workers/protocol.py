"""The cvfleet protocol number: which message shapes a worker understands.

Hosts that share nothing but Redis can run different cvfleet versions. A worker of another version
would run a task whose arguments it reads differently and write wrong bytes, so:

* the fleet's head writes its number to Redis (`cvfleet:protocol`, in tasks/store.py's schema)
  when it starts Redis; a worker started with `cvfleet worker` compares it with its own first and
  refuses to start on a mismatch (workers/fleet.py `join_check`);
* every task message carries it in a header (`cvfleet_protocol`, stamped at publish), and a
  worker hands a message of another number to no pool process (`ProtocolGate`): a newer one goes
  back to the queue for an up-to-date worker and this worker stops; an older one, or one without
  the header (a client of another version), is dropped and recorded as failed with the reason, so
  its sender learns why instead of waiting.

Bump PROTOCOL whenever a task's name, arguments or results change meaning.
"""

from __future__ import annotations

import logging

from celery import bootsteps

PROTOCOL = 1
KEY = "cvfleet:protocol"
HEADER = "cvfleet_protocol"

log = logging.getLogger("celery.worker.cvfleet.protocol")


def stamp(headers: dict | None, **_) -> None:
    """`before_task_publish`: every message names the protocol it was written for (a message that
    already names one keeps it)."""
    if headers is not None:
        headers.setdefault(HEADER, PROTOCOL)


class ProtocolGate(bootsteps.StartStopStep):
    """Consumer step: wraps each task's strategy (what a worker does with a message it received)
    so a message of another protocol never reaches the pool."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, c):
        for name, strategy in list(c.strategies.items()):
            if not getattr(strategy, "_cvfleet_gate", False):
                c.strategies[name] = _gate(c, strategy)


def _gate(c, strategy):
    from celery.worker import state
    from kombu.serialization import prepare_accept_content

    accepted = prepare_accept_content(c.app.conf.accept_content)

    def handle(message, body, ack, reject, callbacks, **kw):
        theirs = message.headers.get(HEADER)
        if theirs == PROTOCOL or message.content_type not in accepted:  # Celery refuses pickle & co. itself
            return strategy(message, body, ack, reject, callbacks, **kw)
        task, task_id = message.headers.get("task"), message.headers.get("id")
        if isinstance(theirs, int) and theirs > PROTOCOL:
            log.error(
                "task %s[%s] is cvfleet protocol %s and this worker speaks %s: it goes back to the queue and "
                "this worker stops; install the head's cvfleet version here and start the worker again",
                task, task_id, theirs, PROTOCOL,
            )  # fmt: skip
            message.reject_log_error(log, c.connection_errors, requeue=True)
            state.should_stop = 1  # the worker's loop shuts down warm, exit code 1
            return None
        reason = (
            f"sent by a cvfleet of protocol {theirs if theirs is not None else 'unknown (no header)'} to a fleet "
            f"of protocol {PROTOCOL}: upgrade the cvfleet that sent it and submit again"
        )
        log.error("task %s[%s] dropped: %s", task, task_id, reason)
        try:
            c.app.backend.mark_as_failure(task_id, RuntimeError(reason), call_errbacks=False)
        finally:
            message.ack_log_error(log, c.connection_errors)
        return None

    handle._cvfleet_gate = True
    return handle
