"""Helpers the tests import: plain functions, one module per subject (`support.fleet` runs the real
`cvfleet` in a child process and waits on it, `support.cli` runs it in the test process, ...). The
fixtures built on them live in tests/conftest.py; no test imports another test module."""

import pkgutil

import pytest

# Their asserts report values as a test's do (by itself pytest rewrites only test modules and conftest).
pytest.register_assert_rewrite(*(f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__)))
