"""Helpers the tests import (plain functions, no fixtures): `support.fleet` runs the real `cvfleet` in
a child process and waits on it, `support.cli` runs it in the test process, `support.vision` reads and
writes real frames and clips, `support.darknet_cfgs` writes Darknet cfgs and weights. The fixtures built
on them live in tests/conftest.py."""

import pytest

# Their asserts report values as a test's do (pytest rewrites only test modules and conftest by itself).
pytest.register_assert_rewrite("support.cli", "support.darknet_cfgs", "support.fleet", "support.vision")
