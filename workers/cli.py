"""The `cvfleet` command: one group, each job's commands in workers/commands/."""

from __future__ import annotations

import sys

import click

from workers.commands import annotate, assets, export, fleet, review, sweep, train
from workers.commands.base import group


@group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def cli():
    """cvfleet: a fleet of CPU workers for video auto-annotation and NumPy CNN sweeps.

    \b
    Start here:
      cvfleet up                 start Redis, workers and Flower on this machine
      cvfleet status             workers, queues, Flower URL
      cvfleet down               stop them
      cvfleet annotate VIDEOS --out DIR      videos -> YOLO dataset across the fleet
      cvfleet review DIR                     the frames to correct first, with reasons
      cvfleet export DIR... --out D          one train/val dataset (YOLO or COCO)
      cvfleet sweep GRID.toml                NumPy CNN hyperparameter sweep across the fleet
      cvfleet train --data mnist5k --save M  train one CNN here, no fleet needed
    Settings come from the environment: CVFLEET_REDIS_URL, CVFLEET_DATA, CVFLEET_CACHE,
    CVFLEET_FLOWER_PORT (see README).
    """


for command in (
    fleet.up,
    fleet.down,
    fleet.status,
    fleet.worker,
    fleet.flower,
    fleet.smoke,
    assets.assets,
    annotate.annotate,
    annotate.batch,
    review.review,
    export.export,
    sweep.sweep,
    train.train,
    train.evaluate,
):
    cli.add_command(command)


def main():
    """Run the CLI; every error is one line on stderr (`cvfleet: what was wrong ...`), non-zero exit."""
    args = sys.argv[1:] or ["--help"]
    try:
        code = cli.main(args, prog_name="cvfleet", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("cvfleet: interrupted", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as e:  # a group called bare: show its help
        click.echo(e.ctx.get_help())
        sys.exit(e.exit_code)
    except click.ClickException as e:
        lines = e.format_message().strip().splitlines() or ["error"]
        hint = f" (see `{e.ctx.command_path} --help`)" if isinstance(e, click.UsageError) and e.ctx else ""
        click.echo(f"cvfleet: {lines[0]}{hint}", err=True)
        sys.exit(e.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
