"""Errors handled once for every command, as pip's `Command.main` does.

The libraries and runtime raise their own one-line errors (`VisionError`, nn's `NNError`, a grid's
`GridError`, `OutsideRoots`, `AssetError`, `RedisNotFound`, `FleetError`); every cvfleet command is
a `Command`, whose `invoke` turns them into a click error, so each is printed as one line with a
non-zero exit (`cvfleet: ...` from `workers.cli.main`, `Error: ...` under click's own runner), and
a command body never wraps an error itself. OSError counts too (a path that cannot be read or
written, a full disk). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools

import click


def known_errors() -> tuple[type[Exception], ...]:
    """The error bases that mean "bad input or environment: say so in one line"."""
    from nn.errors import NNError
    from tasks.roots import OutsideRoots
    from tasks.sweep_grid import GridError
    from vision.errors import VisionError
    from workers.asset_cache import AssetError
    from workers.fleet import FleetError
    from workers.redis_server import RedisNotFound

    return NNError, VisionError, GridError, OutsideRoots, AssetError, RedisNotFound, FleetError, OSError


class _OneLineErrors:
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except known_errors() as e:
            lines = str(e).strip().splitlines()
            raise click.ClickException(lines[0] if lines else e.__class__.__name__) from None


class Command(_OneLineErrors, click.Command):
    pass


class Group(_OneLineErrors, click.Group):
    command_class = Command
    group_class = type  # subgroups are Groups too


command = functools.partial(click.command, cls=Command)
group = functools.partial(click.group, cls=Group)
