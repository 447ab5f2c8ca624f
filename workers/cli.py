"""The `cvfleet` command: one group, each job's commands in workers/commands/."""
from __future__ import annotations

import click

from workers.commands import annotate, assets, fleet, sweep, train


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def cli():
    """cvfleet: a fleet of CPU workers for video auto-annotation and NumPy CNN sweeps.

    \b
    Start here:
      cvfleet up                 start Redis, workers and Flower on this machine
      cvfleet status             workers, queues, Flower URL
      cvfleet down               stop them
      cvfleet annotate VIDEOS --out DIR      videos -> YOLO dataset across the fleet
      cvfleet sweep GRID.toml                NumPy CNN hyperparameter sweep across the fleet
      cvfleet train --data mnist5k --save M  train one CNN here, no fleet needed
    Settings come from the environment: CVFLEET_REDIS_URL, CVFLEET_DATA, CVFLEET_CACHE,
    CVFLEET_FLOWER_PORT (see README).
    """


for command in (fleet.up, fleet.down, fleet.status, fleet.worker, fleet.flower, fleet.smoke,
                assets.assets, annotate.annotate, annotate.batch, sweep.sweep, train.train, train.evaluate):
    cli.add_command(command)


def main():
    cli(prog_name="cvfleet")


if __name__ == "__main__":
    main()
