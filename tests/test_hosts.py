"""Hosts that share nothing but the network with the head (tests/support/hosts.py): a worker on each
runs what the head sends, sees none of the head's files, shows up in the head's Flower, and takes
tasks again after its cable was pulled and plugged back. Root only; skipped elsewhere with the reason."""

from __future__ import annotations

import re
import sys

import pytest

from support.fleet import cvfleet, pool_children, wait_for
from support.hosts import lab

pytestmark = [pytest.mark.fleet, pytest.mark.slow]


def smoke_results(net, n: int, timeout: float = 60) -> dict[str, dict]:
    """Send `n` smoke tasks from the head; their results by task id."""
    app = net.app()
    sent = [app.send_task("cvfleet.smoke.square", args=[i]) for i in range(n)]
    return {r.id: r.get(timeout=timeout) for r in sent}


def until_every_host_ran_one(net, timeout: float = 120) -> dict[str, dict]:
    """Smoke tasks in rounds until each host has run at least one (which host takes a task is up to
    Redis); every result so far by task id."""
    results: dict[str, dict] = {}

    def every_host_seen() -> bool:
        results.update(smoke_results(net, 4))
        return {h.name for h in net.hosts} <= {r["worker"] for r in results.values()}

    wait_for(every_host_seen, timeout, every=0, what="a smoke task run on every host")
    return results


def test_a_worker_on_each_host_runs_the_smoke_job_sent_from_the_head(tmp_path):
    with lab(tmp_path, hosts=2) as net:
        workers = {host.name: host.worker() for host in net.hosts}
        net.wait_workers(workers.values())
        ran_on: dict[str, set[int]] = {}

        def every_host_seen() -> bool:
            out = cvfleet("smoke", "--tasks", "8", env=net.env, timeout=120)
            assert out.returncode == 0, out.stderr
            for host, pid in re.findall(r"(\S+):(\d+)", out.stdout.rsplit(" on ", 1)[1]):
                ran_on.setdefault(host, set()).add(int(pid))
            return set(ran_on) == set(workers)

        wait_for(every_host_seen, 120, every=0, what="`cvfleet smoke` run on every host")
        for host, pids in ran_on.items():
            assert pids <= set(pool_children(workers[host].proc.pid)), f"{host} ran tasks outside its worker"


def test_a_host_sees_none_of_the_heads_files_and_reaches_its_redis(tmp_path):
    with lab(tmp_path, hosts=1) as net:
        host = net.hosts[0]
        video = net.head / "videos" / "clip.avi"
        video.parent.mkdir(parents=True)
        video.write_bytes(b"the submitter's video")
        for hidden in net.hidden:
            listing = host.run(["ls", "-A", str(hidden)])
            assert listing.returncode == 0 and listing.stdout == "", f"{hidden} shows {listing.stdout!r} on the host"
        assert host.run(["cat", str(video)]).returncode != 0
        written = host.run(["sh", "-c", f"echo from-host > {net.head}/planted"])
        assert written.returncode == 0 and not (net.head / "planted").exists()
        assert video.read_bytes() == b"the submitter's video"  # the host's tmpfs never covered the head's view
        ping = f"import redis; print(redis.Redis.from_url({net.redis_url!r}, socket_timeout=5).ping())"
        reached = host.run([sys.executable, "-c", ping])
        assert reached.stdout.strip() == "True", reached.stderr
        assert host.run(["hostname"]).stdout.strip() == host.name


def test_flower_on_the_head_lists_every_hosts_worker_and_the_tasks_each_ran(tmp_path):
    with lab(tmp_path, hosts=2) as net:
        flower = net.start_flower()
        workers = {host.name: host.worker() for host in net.hosts}
        net.wait_workers(workers.values())
        results = until_every_host_ran_one(net)

        wait_for(
            lambda: {w.name for w in workers.values()} <= set(flower.api("/api/workers?refresh=1")),
            60,
            what="every host's worker in Flower's /api/workers",
        )

        def flower_saw_every_task() -> dict | None:
            tasks = flower.api("/api/tasks?taskname=cvfleet.smoke.square&limit=1000")
            done = all(tasks.get(i, {}).get("state") == "SUCCESS" for i in results)
            return tasks if done else None

        tasks = wait_for(flower_saw_every_task, 60, what="every smoke task finished in Flower's /api/tasks")
        for task_id, result in results.items():
            assert tasks[task_id]["worker"] == workers[result["worker"]].name


def test_a_host_cut_off_and_plugged_back_takes_tasks_again(tmp_path):
    with lab(tmp_path, hosts=2) as net:
        cut, other = net.hosts
        workers = {host.name: host.worker() for host in net.hosts}
        net.wait_workers(workers.values())
        until_every_host_ran_one(net)

        cut.cut()
        port = net.redis_url.rsplit(":", 1)[1].split("/")[0]
        probe = f"import socket; socket.create_connection(({net.address!r}, {port}), timeout=3)"
        assert cut.run([sys.executable, "-c", probe]).returncode != 0, "the cut host still reaches the head"
        during = smoke_results(net, 4)
        assert {r["worker"] for r in during.values()} == {other.name}

        cut.restore()
        back = wait_for(
            lambda: {r["pid"] for r in smoke_results(net, 4).values() if r["worker"] == cut.name},
            120,
            every=1,
            what="a task run on the host whose cable came back",
        )
        assert workers[cut.name].proc.poll() is None
        assert back <= set(pool_children(workers[cut.name].proc.pid))
