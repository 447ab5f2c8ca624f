"""`cvfleet export`: many annotated videos as one train/val dataset a trainer opens as it is."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from workers.commands.base import command


@command()
@click.argument("dataset_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="Folder to write (new, empty, or an earlier export)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["yolo", "coco"]),
    default="yolo",
    show_default=True,
    help="yolo: images/, labels/, data.yaml (Ultralytics). coco: images/, annotations/instances_*.json.",
)
@click.option(
    "--split", default=0.8, show_default=True, type=float, help="Share of the frames that go to train, in (0, 1)."
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the split.")
@click.option("--corrected-only", is_flag=True, help="Only the frames a person corrected.")
def export(dataset_dirs, out, fmt, split, seed, corrected_only):
    """Export the videos annotated under DATASET_DIRS (--out folders of `cvfleet annotate`, or
    single videos' folders) as one dataset in OUT.

    \b
    The split keeps near-identical neighbouring frames on one side:
      several videos  split by video (whole videos go to val until about 1 - SPLIT of the
                      frames are there; at least one video on each side);
      one video       split by one contiguous block of frames, placed with the seed.
    File names are <video>_<frame>, unique across videos. The labels are the label files as
    they are now: a person's corrections and the static boxes included. COCO boxes that came
    from the detector keep its score.

    \b
    Then train, e.g.:  yolo train data=OUT/data.yaml model=yolov8n.pt
    """
    from tqdm import tqdm

    from vision.export import export as run_export

    bar = tqdm(unit="frame", file=sys.stderr, disable=None, leave=False)

    def progress(done, total):
        bar.total = total
        bar.update(done - bar.n)

    try:
        s = run_export(dataset_dirs, out, fmt, split, seed, corrected_only, progress)
    finally:
        bar.close()
    train, val = s["frames"]["train"], s["frames"]["val"]
    click.echo(
        f"exported {train + val} frames ({train} train / {val} val, split by {s['split_by']}) "
        f"from {s['videos']} video(s), {s['boxes']} boxes, as {fmt} -> {s['out']}"
    )
    if fmt == "yolo":
        click.echo(f"train with: yolo train data={Path(s['out']) / 'data.yaml'}")
