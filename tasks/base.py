"""One base for every task that works on one item of a batch or a sweep (a video, a chunk, a trial).

Every such task needs the same scaffold around its body, so it lives here once (like Sentry's
`instrumented_task`), and a task body holds only its pipeline calls:

1. The item must still exist (a batch or sweep deleted or expired): otherwise nothing runs.
2. Attempts are counted per task id. Redis keeps no redelivery count, so a task that kills its
   worker every time (out of memory) would loop forever under late acks; after 3 runs it gives up
   and the item is recorded failed.
3. An expected error (bad input, a missing file, a soft time limit) fails the item with a one-line
   reason instead of raising, so the item's batch or sweep goes on.
4. A task that ends, either way, forgets its attempt counter.
5. A failure past all that (the hard time limit: the pool process is killed, and Celery calls
   `on_failure` in the worker's main process; or an unexpected bug) still records the item
   failed, so its batch or sweep ends instead of waiting forever.

A task names its item by keyword arguments (`batch_id=`, `index=`, `sweep_id=`, `trial_id=` ...),
which the hooks receive as they are; positional arguments (a chord's header results) go to the body
alone. A subclass sets `expected` and `item`, and implements `item_exists`, `fail_item` and, where
an expected error must not fail the item itself, `on_expected`.
"""

from __future__ import annotations

from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from tasks.store import count_attempt, forget_attempts
from workers.app import app

MAX_ATTEMPTS = 3


class ItemTask(app.Task):
    """Base of item tasks; see the module docstring. Bind with `@app.task(base=..., bind=True)`."""

    abstract = True
    expected: tuple = (SoftTimeLimitExceeded,)
    item = "task"  # what the task works on, in messages: "video", "chunk", "trial"
    limit_hint = "give it less work"  # what to do about a time limit, after "raise CVFLEET_TASK_TIME_LIMIT or"

    def item_exists(self, **ids) -> bool:
        return True

    def fail_item(self, reason: str, task_id: str, **ids) -> None:
        """Record the item failed with a one-line reason (idempotent). `task_id` is the failed
        task's (in `on_failure`, `self.request` is not that task's request)."""
        raise NotImplementedError

    def on_expected(self, reason: str, **ids):
        """What the task returns after an expected error or after giving up: by default the item
        is recorded failed."""
        self.fail_item(reason, self.request.id, **ids)
        return {"state": "failed"}

    def reason(self, exc: BaseException) -> str:
        """One line saying what went wrong and what to do."""
        if isinstance(exc, TimeLimitExceeded):
            return f"{self.item} was killed at its hard time limit; raise CVFLEET_TASK_TIME_LIMIT or {self.limit_hint}"
        if isinstance(exc, SoftTimeLimitExceeded):
            return f"{self.item} ran past its time limit; raise CVFLEET_TASK_TIME_LIMIT or {self.limit_hint}"
        text = str(exc).strip().splitlines()
        return text[0] if text else exc.__class__.__name__

    def __call__(self, *args, **ids):
        if not self.item_exists(**ids):
            return {"state": "gone"}
        self.request.attempt = count_attempt(self.request.id)  # the body may record it
        if self.request.attempt > MAX_ATTEMPTS:
            return self.on_expected(
                f"a worker died on this {self.item} {MAX_ATTEMPTS} times; it is not retried again", **ids
            )
        try:
            result = self.run(*args, **ids)
        except self.expected as e:
            result = self.on_expected(self.reason(e), **ids)
        forget_attempts(self.request.id)
        return result

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        if self.item_exists(**kwargs):
            self.fail_item(self.reason(exc), task_id, **kwargs)
