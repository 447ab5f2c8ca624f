"""The annotation of one video, as steps that a single process or a Celery canvas can run.

    prepare_video      extract frames, plan tiles             (once per video)
    detect_jobs        YOLO on (frame, tile) jobs             (any chunking, any worker)
    merge_frames       merge each frame's boxes, write detections.jsonl
                       (once per video, all detections)
    finish_video       classes.txt, suggestions, label files (static boxes added, a person's
                       corrections kept), review.txt, record, counts

`reuse` decides what a re-run can skip: nothing changed (the previous summary); only the static
boxes changed (label files written again from detections.jsonl: no YOLO, no merging); only merge
options changed (re-merged from detections.jsonl's raw boxes: no YOLO).

`annotate_video` runs them in order in one process. A distributed run calls the same functions
with the same inputs: the merge sorts its input into a canonical order, so the labels do not
depend on how jobs were chunked or in which order results arrived, and boxes cross JSON without
loss (Python floats), so both runs write the same bytes. Messages carry only paths, frame names
and tile coordinates, never pixels.

Layout of a video's output dir: images/000001.jpg, labels/000001.txt, classes.txt, video.json,
detections.jsonl, annotation.json, static_suggestions.txt, review.txt; labels.auto/ beside
corrected frames (vision/corrections.py); on request previews/ and contact_sheet.png.
"""

import json
from pathlib import Path

import cv2
import numpy as np

from .boxes import boxes_from_json, boxes_to_json
from .content_scale import SAMPLE_FRAMES, knee_scale
from .corrections import corrected_frames, forget_early, recorded_hashes, settle_labels, write_early
from .datasets import RECORD_NAME
from .detections import (
    DETECTIONS_NAME,
    frame_record,
    merged_boxes,
    raw_detections,
    read_detections,
    write_detections,
)
from .errors import VisionError
from .files import write_text_atomic
from .frames import IMAGES_DIR, extract_frames, probe, sample_frames
from .labels import box_to_row, format_labels, read_classes, read_yolo_labels, write_classes
from .merge import merge_tiles, to_frame
from .motion import STILL_NAME, gated_jobs, plan_still, read_still, reuse_still, write_still
from .review import write_review
from .settings import COARSE_LEVEL, AnnotateSettings
from .static import (
    IGNORE_SUGGESTIONS_NAME,
    NO_STATICS,
    SUGGESTIONS_NAME,
    Statics,
    find_static_rows,
    frame_label_files,
    learn_ignore,
    read_statics,
    suppress,
)
from .temporal import over_time
from .tiling import Tile, tile_grid

LABELS_DIR = "labels"
CLASSES_NAME = "classes.txt"
REVIEW_FIRST = 5  # frames named in the summary's "review first" line


def video_out_dir(out_root, video) -> Path:
    """Where a video's dataset goes: `<out_root>/<video file stem>`."""
    return Path(out_root) / Path(video).stem


def prepare_video(video, video_dir, settings: AnnotateSettings) -> dict:
    """Extract (or reuse) the sampled frames; returns the video.json dict (see extract_frames), with
    the video's content scale (`video_scale`)."""
    info = probe(video)
    info["scale"] = video_scale(video, info)
    return extract_frames(video, video_dir, **settings.sampling(), info=info)


def video_scale(video, info: dict) -> float:
    """How many frame pixels a pixel of the video's content spans, from a few frames spread over it
    (vision/content_scale.py); 1 for camera footage."""
    return content_scale(sample_frames(video, info, SAMPLE_FRAMES))


def content_scale(images) -> float:
    """The content scale of these frames (BGR arrays of one size): content_scale.knee_scale."""
    return knee_scale([cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype("float32") for image in images])


def plan_tiles(video_meta: dict, settings: AnnotateSettings) -> list:
    """The tiles of every frame of this video (all frames have the video's size and content scale),
    the full-frame pass last when it runs (see AnnotateSettings.runs_full_frame)."""
    return frame_tiles(video_meta["width"], video_meta["height"], settings, video_meta.get("scale", 1.0))


def frame_tiles(width: int, height: int, settings: AnnotateSettings, scale: float = 1.0) -> list:
    """The tiles of a `width` x `height` frame whose content spans `scale` frame pixels a pixel:
    `--tile` x scale pixels, on the net's stride lattice at that size; with the coarse views
    (AnnotateSettings.runs_full_frame), then the tiles of the coarse level (COARSE_LEVEL times as
    large, on their own lattice; none where that is the whole frame) and the full-frame pass last.
    VisionError past the tiles-per-frame limit."""
    tiles = tile_grid(width, height, *settings.tile_size(scale), settings.overlap, False, settings.tile_align(scale))
    if settings.runs_full_frame(width, height, scale):
        coarse = tile_grid(
            width,
            height,
            *settings.tile_size(scale, COARSE_LEVEL),
            settings.overlap,
            True,
            settings.tile_align(scale, COARSE_LEVEL),
        )
        tiles += [t for t in coarse if t not in tiles]
    settings.check_tile_count(len(tiles), width, height)
    return tiles


def detect_plan(video_dir, video_meta: dict, settings: AnnotateSettings) -> tuple[list, list]:
    """(tiles, jobs): the tiles of every frame and the [frame, tile] jobs that go through YOLO. With
    `skip_still`, the still tiles are left out and recorded in still_tiles.json (vision/motion.py)."""
    tiles = plan_tiles(video_meta, settings)
    jobs = tile_jobs(video_meta, tiles)
    if settings.skip_still is None:
        (Path(video_dir) / STILL_NAME).unlink(missing_ok=True)
        return tiles, jobs
    still = plan_still(video_dir, video_meta["frames"], tiles, settings.skip_still)
    write_still(video_dir, still)
    return tiles, gated_jobs(jobs, still)


def planned_jobs(video_dir, video_meta: dict, settings: AnnotateSettings) -> list:
    """The jobs `detect_plan` chose, read back (still_tiles.json, not planned again)."""
    jobs = tile_jobs(video_meta, plan_tiles(video_meta, settings))
    return gated_jobs(jobs, read_still(video_dir)) if settings.skip_still is not None else jobs


def complete_detections(video_dir, per_frame: dict) -> dict:
    """Every frame's tiles: the still ones (still_tiles.json, if any) get their key frame's boxes."""
    still = read_still(video_dir)
    return reuse_still(per_frame, still) if still else per_frame


def tile_jobs(video_meta: dict, tiles) -> list:
    """Every (frame name, tile) pair as JSON-ready [frame_name, [x, y, w, h]], frame by frame."""
    return [[name, Tile(*t).to_json()] for name in video_meta["frames"] for t in tiles]


def chunk_jobs(jobs, tiles_per_task: int) -> list:
    """Jobs cut into consecutive chunks of at most `tiles_per_task` (one task each)."""
    if not isinstance(tiles_per_task, int) or tiles_per_task < 1:
        raise VisionError(f"tiles per task must be an integer >= 1, got {tiles_per_task!r}")
    return [jobs[i : i + tiles_per_task] for i in range(0, len(jobs), tiles_per_task)]


def read_frame(frame_path) -> "cv2.Mat":
    """A frame JPEG as a BGR array; VisionError if it cannot be read."""
    image = cv2.imread(str(frame_path), cv2.IMREAD_COLOR)
    if image is None:
        raise VisionError(f"cannot read frame image {frame_path}; re-extract the frames")
    return image


def decode_frame(data: bytes, what: str) -> "cv2.Mat":
    """A frame's JPEG bytes as a BGR array, decoded as `read_frame` decodes the file (the same
    pixels); VisionError naming `what` if they are not an image."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise VisionError(f"frame {what} is not a readable JPEG; re-extract the frames")
    return image


def detect_tiles(image, tiles, detector) -> list:
    """[(Tile, [Box, ...]), ...]: each tile's boxes in frame pixels (not yet merged).

    Each tile is cropped from the frame and goes through the net on its own.
    """
    return [
        (t, to_frame(detector.detect(image[t.y : t.y + t.h, t.x : t.x + t.w]), t)) for t in (Tile(*x) for x in tiles)
    ]


def detect_jobs(video_dir, jobs, detector, frame=None) -> dict:
    """Run a chunk of [frame_name, tile] jobs; {frame_name: [[tile, [box JSON, ...]], ...]} for the chunk.
    Frames are read from `video_dir`, or with `frame(name) -> image` from wherever it finds them.

    The result is small JSON (tiles and boxes only).
    """
    by_frame = {}
    for name, tile in jobs:
        by_frame.setdefault(name, []).append(Tile.from_json(tile))
    if frame is None:
        images = Path(video_dir) / IMAGES_DIR
        frame = lambda name: read_frame(images / f"{name}.jpg")  # noqa: E731
    return {
        name: [[t.to_json(), boxes_to_json(boxes)] for t, boxes in detect_tiles(frame(name), tiles, detector)]
        for name, tiles in by_frame.items()
    }


def gather_detections(chunk_results) -> dict:
    """Join chunk results (from `detect_jobs`, in any order) into {frame_name: [(Tile, [Box]), ...]},
    each frame's tiles in canonical order, so the merge sees the same input whatever the chunking."""
    per_frame = {}
    for result in chunk_results:
        for name, tiles in result.items():
            per_frame.setdefault(name, []).extend((Tile.from_json(t), boxes_from_json(b)) for t, b in tiles)
    return {name: sorted(tiles, key=lambda e: e[0]) for name, tiles in per_frame.items()}


def merge_frame(per_tile, settings: AnnotateSettings, width: int, height: int) -> list:
    """One box per object across the tiles of a frame: [(Box, [index into per_tile, ...]), ...]."""
    return merge_tiles(
        per_tile, width, height, settings.merge, settings.metric, settings.merge_threshold, settings.class_agnostic
    )


def merge_frames(video_dir, video_meta: dict, detections_by_frame: dict, settings: AnnotateSettings) -> int:
    """Merge every frame's per-tile boxes, then fill gaps and drop flicker over time as the settings
    ask (vision/temporal.py), and write detections.jsonl (the raw and the merged boxes of every
    frame, in frame order); `finish_video` writes the label files from it. Returns the number of
    boxes. detections_by_frame: {frame name: [(Tile, [Box]), ...]} (from gather_detections)."""
    frames = set(video_meta["frames"])
    unknown = sorted(set(detections_by_frame) - frames)
    if unknown:
        raise VisionError(f"detections for frames not in video.json: {unknown[:3]}; re-plan the video")
    w, h = video_meta["width"], video_meta["height"]
    per_tile = [detections_by_frame.get(name, []) for name in video_meta["frames"]]
    merged = [merge_frame(p, settings, w, h) for p in per_tile]
    kept, filled = over_time([[b for b, _ in m] for m in merged], settings.temporal, settings.fill_gap)
    records = [
        frame_record(name, p, [m[i] for i in k], f)
        for name, p, m, k, f in zip(video_meta["frames"], per_tile, merged, kept, filled)
    ]
    write_detections(Path(video_dir) / DETECTIONS_NAME, records)
    return sum(len(r["boxes"]) for r in records)


def automatic_rows(records: dict, video_meta: dict) -> dict:
    """{frame name: [LabelRow]}: the merged boxes of detections.jsonl's records as label rows, every
    frame of the video in order (what a label file holds before static boxes and corrections)."""
    missing = [n for n in video_meta["frames"] if n not in records]
    if missing:
        raise VisionError(f"{DETECTIONS_NAME} has no record of frame {missing[0]}; annotate the video again")
    return {name: frame_rows(records[name], video_meta["width"], video_meta["height"]) for name in video_meta["frames"]}


def frame_rows(record: dict, width: int, height: int) -> list:
    """A detections record's merged boxes as label rows (boxes of no area left out)."""
    return [r for r in (box_to_row(b, width, height) for b, _ in merged_boxes(record)) if r.w > 0.0 and r.h > 0.0]


def labels_stream(settings: AnnotateSettings) -> bool:
    """Whether a frame's label file can be written as soon as its own tiles are detected: not when
    the labels look over time (--temporal: a track needs the frames after it) or reuse still tiles
    (--skip-still: planned with the whole run)."""
    return settings.temporal == "off" and settings.skip_still is None


def label_early(video_dir, width: int, height: int, per_frame: dict, settings: AnnotateSettings, statics=NO_STATICS):
    """Write the label files of frames whose every tile is detected (per_frame, as from
    gather_detections), before the rest of the video, with the bytes `finish_video` will write for
    them; a person's file is left alone (vision/corrections.py). Returns the frames written."""
    if not labels_stream(settings):
        return []
    rows = {}
    for name, tiles in per_frame.items():
        record = frame_record(name, tiles, merge_frame(tiles, settings, width, height))
        record = json.loads(json.dumps(record))  # the boxes exactly as detections.jsonl will hold them
        rows[name] = suppress(frame_rows(record, width, height), statics.ignore)
    return write_early(video_dir, Path(video_dir) / LABELS_DIR, rows, statics.labels)


def _same_inputs(video_dir, video_meta: dict, settings: AnnotateSettings, parts) -> bool:
    """Whether the previous complete run saw the same frames with the same `parts` of the record
    and left detections.jsonl for every frame."""
    previous = _previous_record(video_dir)
    record = annotation_record(video_meta, settings)
    if not previous or any(previous.get(k) != record[k] for k in ("video_sha256", "frames", *parts)):
        return False
    try:
        return set(read_detections(Path(video_dir) / DETECTIONS_NAME)) == set(video_meta["frames"])
    except VisionError:
        return False


def relabelable(video_dir, video_meta: dict, settings: AnnotateSettings) -> bool:
    """Whether only the static boxes (or nothing) changed: the label files can be written again from
    detections.jsonl's merged boxes, with no YOLO and no merging."""
    return _same_inputs(video_dir, video_meta, settings, ("detection", "merge"))


def remergeable(video_dir, video_meta: dict, settings: AnnotateSettings) -> bool:
    """Whether the previous run saw the same frames with the same detection settings and left
    detections.jsonl for every frame: then only merging needs doing again, no YOLO."""
    return _same_inputs(video_dir, video_meta, settings, ("detection",))


def remerge_video(video_dir, video_meta: dict, settings: AnnotateSettings) -> int:
    """Merge again from detections.jsonl's raw per-tile boxes with the settings' merge options."""
    records = read_detections(Path(video_dir) / DETECTIONS_NAME)
    return merge_frames(video_dir, video_meta, {n: raw_detections(r) for n, r in records.items()}, settings)


def reuse(video_dir, video_meta: dict, settings: AnnotateSettings, statics: Statics = NO_STATICS, labelling=None):
    """What a run can skip, from what is on disk: the previous summary when nothing changed, or
    finish_video's summary after re-labelling (only static boxes changed) or re-merging (only
    merge options changed); None when YOLO must run. `labelling()`, if given, is called before
    labels are written again (a task reports its state with it)."""
    summary = reusable_summary(video_dir, video_meta, settings, statics)
    if summary is not None:
        return summary
    if relabelable(video_dir, video_meta, settings):
        how = "relabelled"
    elif remergeable(video_dir, video_meta, settings):
        how = "remerged"
    else:
        return None
    if labelling:
        labelling()
    if how == "remerged":
        remerge_video(video_dir, video_meta, settings)
    return finish_video(video_dir, video_meta, settings, statics, how=how)


def count_classes(labels_dir, names) -> dict:
    """{class name: number of boxes} over all frame label files, classes in index order; an
    index beyond `names` is counted under its number."""
    counts = {}
    for path in frame_label_files(labels_dir):
        for row in read_yolo_labels(path):
            counts[row.cls] = counts.get(row.cls, 0) + 1
    return {(names[c] if c < len(names) else str(c)): counts[c] for c in sorted(counts)}


def format_counts(counts: dict) -> str:
    """Per-class counts as aligned lines ('person  1234'), for the CLI and `make demo`."""
    if not counts:
        return "no boxes\n"
    width = max(len(n) for n in counts)
    return "".join(f"{n:<{width}}  {c}\n" for n, c in counts.items())


def annotation_record(video_meta: dict, settings: AnnotateSettings, statics: Statics = NO_STATICS) -> dict:
    """What the labels depend on: source checksum, detection and merge fingerprints, static boxes
    and static negatives."""
    return {
        "video_sha256": video_meta["sha256"],
        "detection": settings.fingerprint("detection"),
        "merge": settings.fingerprint("merge"),
        **statics.sha256(),
        "frames": list(video_meta["frames"]),
    }


def _previous_record(video_dir) -> dict | None:
    try:
        return json.loads((Path(video_dir) / RECORD_NAME).read_text(encoding="utf-8")).get("record")
    except (OSError, ValueError, AttributeError):
        return None


def reusable_summary(video_dir, video_meta: dict, settings: AnnotateSettings, statics: Statics = NO_STATICS):
    """The summary of a previous complete run with the same inputs, or None.

    A run is complete when annotation.json (written last) matches and every label file exists.
    The count of corrected frames is taken afresh (a person may have corrected some since); with
    `overwrite_corrections` (and corrected frames) or `learn_static` the run is not reused.
    """
    if _previous_record(video_dir) != annotation_record(video_meta, settings, statics):
        return None
    labels = Path(video_dir) / LABELS_DIR
    if not all((labels / f"{n}.txt").is_file() for n in video_meta["frames"]):
        return None
    corrected = corrected_frames(labels, recorded_hashes(Path(video_dir) / RECORD_NAME))
    if settings.learn_static or (corrected and settings.overwrite_corrections):
        return None  # both act on the label files: relabel from detections.jsonl (no YOLO)
    previous = json.loads((Path(video_dir) / RECORD_NAME).read_text(encoding="utf-8"))
    return {**previous["summary"], "corrected_kept": len(corrected), "corrected_overwritten": 0, "reused": True}


def decode_warning(video_meta: dict, settings: AnnotateSettings) -> str | None:
    """A video whose header announces more frames than decode (a wrong header, a cut-off copy) is
    annotated as far as it decodes, with this warning; with `strict` it fails instead."""
    if not video_meta.get("truncated"):
        return None
    warning = f"header says {video_meta['frame_count']} frames, {video_meta['frames_decoded']} decoded"
    if settings.strict:
        raise VisionError(f"truncated video: {warning}; re-encode it, or annotate what decodes without --strict")
    return warning


def finish_video(
    video_dir, video_meta: dict, settings: AnnotateSettings, statics: Statics = NO_STATICS, how: str = "detected"
) -> dict:
    """After detections.jsonl holds every frame's merged boxes: classes.txt, static suggestions
    (from the detector's boxes), the label files (automatic boxes plus static boxes, a person's
    corrections kept: see vision/corrections.py), then annotation.json, written last: it marks the
    video complete and records the hash of every label file cvfleet wrote.
    Idempotent: run again (a redelivered task), it writes the same bytes.
    how: "detected" (YOLO ran), "remerged" (merged again from detections.jsonl's raw boxes, no
    YOLO) or "relabelled" (only the static boxes changed: no YOLO, no merging).
    Returns the summary (counts per class, frames, tiles, where the output is, corrected frames
    kept, a decoding `warning`)."""
    video_dir = Path(video_dir)
    labels = video_dir / LABELS_DIR
    names = read_classes(settings.model.names)
    write_classes(video_dir / CLASSES_NAME, names)
    records = read_detections(video_dir / DETECTIONS_NAME)
    detected = automatic_rows(records, video_meta)
    auto = {name: suppress(rows, statics.ignore) for name, rows in detected.items()}
    ignored = set(statics.labels)
    suggestions = find_static_rows([[r for r in rows if r not in ignored] for rows in auto.values()])
    write_text_atomic(video_dir / SUGGESTIONS_NAME, format_labels(suggestions))
    settled = settle_labels(
        video_dir,
        labels,
        auto,
        statics.labels,
        recorded_hashes(video_dir / RECORD_NAME),
        overwrite=settings.overwrite_corrections,
    )
    learned = None
    if settings.learn_static:
        learned = learn_ignore(detected, {n: read_yolo_labels(labels / f"{n}.txt") for n in settled.kept})
        learned = [r for r in learned if r not in set(statics.ignore)]
        write_text_atomic(video_dir / IGNORE_SUGGESTIONS_NAME, format_labels(learned))
    ranked = write_review(
        video_dir,
        [records[n] for n in video_meta["frames"]],
        video_meta,
        settings.conf,
        settings.model.input_size,
        settled.kept,
    )
    tiles = plan_tiles(video_meta, settings)
    counts = count_classes(labels, names)
    summary = {
        "video": video_meta["source"],
        "video_dir": str(video_dir),
        "frames": len(video_meta["frames"]),
        "tiles_per_frame": len(tiles),
        "tiles": len(tiles) * len(video_meta["frames"]),
        "boxes": sum(counts.values()),
        "counts": counts,
        "static_boxes": len(statics.labels),
        "static_ignored": len(statics.ignore),
        "ignore_suggestions": None if learned is None else len(learned),
        "static_suggestions": len(suggestions),
        "corrected_kept": len(settled.kept),
        "corrected_overwritten": len(settled.overwritten),
        "backup": str(settled.backup) if settled.backup else None,
        "review_first": [d.frame for d in ranked[:REVIEW_FIRST]],
        "truncated": bool(video_meta.get("truncated")),
        "warning": decode_warning(video_meta, settings),
        "full_frame": settings.runs_full_frame(video_meta["width"], video_meta["height"]),
        "remerged": how == "remerged",
        "relabelled": how == "relabelled",
        "reused": False,
    }
    record = {
        "record": annotation_record(video_meta, settings, statics),
        "summary": summary,
        "label_sha256": settled.written,
        "settings": settings.to_json(),
    }
    write_text_atomic(video_dir / RECORD_NAME, json.dumps(record, indent=1) + "\n")
    forget_early(video_dir)
    return summary


def write_video_previews(video_dir, settings: AnnotateSettings) -> None:
    """previews/ (every frame with its boxes) and contact_sheet.png, with the model's class names."""
    from .preview import write_previews

    write_previews(video_dir, read_classes(settings.model.names))


def annotate_video(
    video, out_dir, settings: AnnotateSettings, static=None, progress=None, preview: bool = False, static_ignore=None
) -> dict:
    """Annotate one video in this process; the reference for the distributed run.

    out_dir: dataset root; the video's files go to `video_out_dir(out_dir, video)`.
    static: path of a static_labels.txt (YOLO format) or None; static_ignore: of a
    static_ignore.txt (same format: false boxes standing still, suppressed in every frame) or None.
    progress: optional callable progress(stage, done, total), stage 'frames' or 'tiles'.
    preview: also write previews/ and contact_sheet.png.
    Returns the summary of `finish_video` ('reused': True if nothing needed to be redone,
    'relabelled': True if only the static boxes changed, 'remerged': True if only the merge ran
    again).
    """
    from .detector import get_detector

    settings.validate()
    statics = read_statics(static, static_ignore)
    video_dir = video_out_dir(out_dir, video)
    meta = prepare_video(video, video_dir, settings)
    decode_warning(meta, settings)
    if progress:
        progress("frames", len(meta["frames"]), len(meta["frames"]))
    summary = reuse(video_dir, meta, settings, statics)
    if summary is None:
        detector = get_detector(settings.detector_spec())
        tiles, jobs = detect_plan(video_dir, meta, settings)
        results = []
        for done, chunk in enumerate(chunk_jobs(jobs, len(tiles)), start=1):
            results.append(detect_jobs(video_dir, chunk, detector))
            if progress:
                progress("tiles", min(done * len(tiles), len(jobs)), len(jobs))
        merge_frames(video_dir, meta, complete_detections(video_dir, gather_detections(results)), settings)
        summary = finish_video(video_dir, meta, settings, statics)
    if preview:
        write_video_previews(video_dir, settings)
    return summary
