"""Following a batch or a sweep from the client: poll Redis until the job ends, through restarts."""

from __future__ import annotations

import time

import click


def through_outages(fetch, resume_hint: str, patience: float = 300):
    """fetch(); while Redis is down or reloading its AOF, wait for it (up to `patience` s) and say
    so once. `resume_hint` is the command that picks the job up again if Redis stays away."""
    import redis

    deadline = time.monotonic() + patience
    warned = False
    while True:
        try:
            return fetch()
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            if time.monotonic() > deadline:
                raise click.ClickException(
                    f"Redis unreachable for {patience:.0f} s; the job may still be running: "
                    f"`{resume_hint}` once it is back"
                ) from None
            if not warned:
                click.echo("Redis unreachable; waiting for it to come back...", err=True)
                warned = True
            time.sleep(1)


def watch(info, fetch, ended, show, interval: float, resume_hint: str):
    """Show `info` and its successors from `fetch()` every `interval` s until `ended(info)`;
    returns the last one. `show` has update(info) and close()."""
    try:
        while True:
            show.update(info)
            if ended(info):
                return info
            time.sleep(interval)
            info = through_outages(fetch, resume_hint)
    finally:
        show.close()
