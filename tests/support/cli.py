"""The `cvfleet` command line run inside the test process, for checks that cross no process boundary."""

from __future__ import annotations

import subprocess
import sys
from unittest import mock

from click.testing import CliRunner


def cvfleet_here(*args: str) -> subprocess.CompletedProcess:
    """`cvfleet ARGS` through `workers.cli.main` (its error handling included) in this process, with
    stdin, stdout and stderr swapped by click's CliRunner: the exit code and both outputs a child
    process would give, without a Python start-up and its imports (about a second each)."""
    from workers import cli

    with CliRunner().isolation() as (out, err, _), mock.patch.object(sys, "argv", ["cvfleet", *args]):
        code = 0
        try:
            cli.main()
        except SystemExit as e:
            code = e.code or 0
    return subprocess.CompletedProcess(["cvfleet", *args], code, out.getvalue().decode(), err.getvalue().decode())
