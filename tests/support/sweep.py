"""Sweep grids for the fleet tests, and what a refused sweep leaves behind."""

from __future__ import annotations

import re

SLICE = 'data = "mnist5k"\ntrain_limit = 500\nval_limit = 200\n'  # 500 train / 200 validation digits


def write_grid(path, body: str):
    path.write_text(SLICE + body)
    return path


def error_line(run) -> str:
    """The one line a refused command printed on stderr, without the program's prefix."""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    return re.sub(r"^(Error|cvfleet): ", "", lines[0])


def sweep_keys() -> set[str]:
    from tasks.store import client

    return set(client().scan_iter(match="cvfleet:sweep*", count=1000))
