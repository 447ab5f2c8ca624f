"""`cvfleet up | down | status | worker | flower | smoke`: run and inspect the fleet."""

from __future__ import annotations

import os
import socket
import sys

import click

from workers import config, fleet
from workers.commands.base import command


@command()
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: one per core, each with one OpenCV/BLAS thread).",
)
@click.option(
    "--listen",
    metavar="ADDR",
    default="",
    help="Also serve Redis on this address of this machine, for workers on other machines: TLS only, "
    "with a certificate from the fleet's own CA, and the password. Flower stays on 127.0.0.1.",
)
def up(concurrency, listen):
    """Start the local fleet: a real Redis (loopback, AOF), Celery workers on every queue
    (video, detect, train) and Flower with basic auth. Running it twice starts nothing new."""
    started = fleet.up(concurrency, listen=listen)
    s = started.state
    cfg = config.load()
    word = "already running" if started.already_running else "started"
    click.echo(
        f"fleet {word}: redis {s['redis_url']} (pid {s['pids']['redis']}, {s['redis_binary']}), "
        f"worker pid {s['pids']['worker']} x{s['concurrency']} processes, flower pid {s['pids']['flower']}"
    )
    click.echo(f"Flower: {s['flower_url']}  user: {cfg.flower_user}  password: {started.password}")
    click.echo(f"data root: {cfg.data}   logs: {cfg.fleet_dir}")
    if s.get("listen"):
        _print_join(cfg, s["listen"])


def _print_join(cfg: config.Config, address: str) -> None:
    """What a worker on another machine needs: two files and one command. The password is read from
    its file by the shell there, so it is never printed."""
    host = f"[{address}]" if ":" in address else address
    url = f"rediss://:$(cat redis.password)@{host}:{cfg.redis_port}/{cfg.redis_url.rsplit('/', 1)[-1]}"
    click.echo(f"Redis also listens on {host}:{cfg.redis_port}, TLS only, with its password.")
    click.echo(
        f"On another machine, copy {cfg.fleet_dir / 'tls' / 'ca.crt'} and {cfg.fleet_dir / config.REDIS_PASSWORD_FILE} "
        "into one directory (keep redis.password mode 0600) and run there:"
    )
    click.echo(f'  CVFLEET_REDIS_URL="{url}" CVFLEET_REDIS_CA=ca.crt cvfleet worker -Q detect,train')


@command()
def down():
    """Stop everything `cvfleet up` started (Flower, workers, then Redis), by pid."""
    stopped = fleet.down()
    click.echo("stopped: " + ", ".join(stopped) if stopped else "no local fleet was running")


@command()
def status():
    """List live workers, queue lengths and the Flower URL."""
    st = fleet.status()
    click.echo(f"redis:  {st['redis']}")
    click.echo(f"flower: {st['flower'] or '(not started by cvfleet up on this machine)'}")
    click.echo("queues: " + "  ".join(f"{q}={n}" for q, n in st["queues"].items()))
    if not st["workers"]:
        click.echo("workers: none answered")
    for name, w in st["workers"].items():
        click.echo(f"worker {name}: pid {w['pid']}, {w['pool']} processes, {w['tasks']} tasks done")


@command()
@click.option(
    "--queues",
    "-Q",
    default="video,detect,train",
    show_default=True,
    help="Comma-separated queues to consume: video, detect, train.",
)
@click.option(
    "--concurrency", "-c", type=click.IntRange(min=1), default=None, help="Pool processes (default: one per core)."
)
@click.option("--name", "-n", default=None, help="Unique worker name (default: QUEUES@hostname).")
def worker(queues, concurrency, name):
    """Run one Celery worker in the foreground against CVFLEET_REDIS_URL (what docker-compose and
    extra machines run; BLAS/OpenCV threads are pinned per process). It starts only once Redis
    answers with the password (and, over rediss://, a certificate CVFLEET_REDIS_CA vouches for) and
    speaks this cvfleet's protocol."""
    from workers.app import QUEUES

    bad = [q for q in queues.split(",") if q not in QUEUES]
    if bad:
        raise click.BadParameter(f"unknown queue {bad[0]!r}; choose from {', '.join(QUEUES)}", param_hint="--queues")
    fleet.join_check(config.load())  # wrong password, CA or version, or no Redis: one line, no task taken
    concurrency = concurrency or os.cpu_count() or 1
    name = name or f"{queues.replace(',', '-')}-{os.getpid()}@{socket.gethostname()}"
    cmd = fleet.worker_command(concurrency, queues, name)
    os.execve(sys.executable, cmd, fleet.worker_env(concurrency))


@command()
@click.option("--address", default="127.0.0.1", show_default=True, help="Interface to bind (0.0.0.0 in a container).")
@click.option("--port", type=int, default=None, help="Port (default CVFLEET_FLOWER_PORT or 5555).")
def flower(address, port):
    """Run Flower in the foreground with basic auth. The password comes from CVFLEET_FLOWER_PASSWORD
    or, failing that, the one `cvfleet up` generated under the data root."""
    cfg = config.load()
    password = os.environ.get("CVFLEET_FLOWER_PASSWORD") or fleet.flower_password(cfg)
    cmd = fleet.flower_command(port or cfg.flower_port, address, cfg.data / "flower.db")
    os.execve(sys.executable, cmd, fleet.flower_env(cfg.flower_user, password))


@command()
@click.option("--tasks", "n", type=click.IntRange(min=1), default=8, show_default=True)
def smoke(n):
    """Send N small tasks through the broker and print their JSON results."""
    from celery import group
    from tqdm import tqdm

    from tasks.smoke import square

    fleet.require_redis(config.load())
    result = group(square.s(i) for i in range(n)).apply_async()
    with tqdm(total=n, desc="smoke tasks", unit="task", disable=None) as bar:  # no bar off a terminal
        import time

        while not result.ready():
            bar.n = result.completed_count()
            bar.refresh()
            time.sleep(0.1)
        bar.n = n
        bar.refresh()
    values = result.get(timeout=10)
    workers = sorted({f"{v['worker']}:{v['pid']}" for v in values})
    click.echo(f"smoke job completed: {n} tasks, squares {[v['square'] for v in values]}, on {', '.join(workers)}")
