"""`cvfleet review`: which frames to correct first, from what the detector already said."""

from __future__ import annotations

from pathlib import Path

import click

from workers.commands.base import command


@command()
@click.argument("dataset_dir", type=click.Path(path_type=Path))
@click.option("--top", default=12, show_default=True, type=click.IntRange(1), help="Frames to print and draw.")
def review(dataset_dir, top):
    """Rank the frames of DATASET_DIR by doubt, most doubtful first. No inference: it reads
    detections.jsonl, so it takes seconds.

    DATASET_DIR is the --out folder of `cvfleet annotate` (every video in it) or one video's
    folder. For each video it writes review.txt (every doubtful frame with its reasons) and
    review_sheet.png (the TOP worst frames, doubtful boxes dashed) and prints the TOP worst.

    \b
    Reasons, heaviest first: a box filled in over a gap of a track; a box one of two
    overlapping tiles found and the other missed; the full-frame pass and the tiles
    disagreeing; a box living one frame only; a confidence below 0.5; a jump in the box
    count against the neighbouring frames. Frames you already corrected are left out.
    """
    from vision.datasets import video_dirs
    from vision.review import REVIEW_NAME, SHEET_NAME, review_video

    for video_dir in video_dirs(dataset_dir):
        ranked = review_video(video_dir, top)
        if not ranked:
            click.echo(f"{video_dir.name}: no doubtful frame")
            continue
        click.echo(f"{video_dir.name}: {len(ranked)} frame(s) with a doubt; the worst {min(top, len(ranked))}:")
        for d in ranked[:top]:
            click.echo(f"  {d.frame}  {d.score:4.1f}  {'; '.join(d.reasons)}")
        click.echo(f"  -> {video_dir / REVIEW_NAME}, {video_dir / SHEET_NAME}")
