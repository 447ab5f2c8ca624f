"""The annotation of one video, as steps that a single process or a Celery canvas can run.

    prepare_video      extract frames, plan tiles             (once per video)
    detect_jobs        YOLO on (frame, tile) jobs             (any chunking, any worker)
    label_frames       merge each frame's boxes, write labels and detections.jsonl
                       (once per video, all detections)
    finish_video       classes.txt, suggestions, static boxes, record, counts

A re-run whose detection settings match the previous run's (only merge options changed) re-merges
from detections.jsonl (`remergeable`, `remerge_video`) and runs no YOLO.

`annotate_video` runs them in order in one process. A distributed run calls the same functions
with the same inputs: the merge sorts its input into a canonical order, so the labels do not
depend on how jobs were chunked or in which order results arrived, and boxes cross JSON without
loss (Python floats), so both runs write the same bytes. Messages carry only paths, frame names
and tile coordinates, never pixels.

Layout of a video's output dir: images/000001.jpg, labels/000001.txt, classes.txt, video.json,
detections.jsonl, annotation.json, static_suggestions.txt, and on request previews/ and
contact_sheet.png.
"""

import hashlib
import json
from pathlib import Path

import cv2

from .boxes import boxes_from_json, boxes_to_json
from .detections import DETECTIONS_NAME, frame_record, raw_detections, read_detections, write_detections
from .errors import VisionError
from .files import write_text_atomic
from .frames import IMAGES_DIR, extract_frames
from .labels import format_labels, read_classes, read_yolo_labels, write_classes, write_yolo_labels
from .merge import merge_tiles, to_frame
from .settings import AnnotateSettings
from .static import SUGGESTIONS_NAME, frame_label_files, propagate_static, read_static_labels, suggest_static
from .tiling import Tile, tile_grid

LABELS_DIR = "labels"
CLASSES_NAME = "classes.txt"
RECORD_NAME = "annotation.json"


def video_out_dir(out_root, video) -> Path:
    """Where a video's dataset goes: `<out_root>/<video file stem>`."""
    return Path(out_root) / Path(video).stem


def prepare_video(video, video_dir, settings: AnnotateSettings) -> dict:
    """Extract (or reuse) the sampled frames; returns the video.json dict (see extract_frames)."""
    return extract_frames(video, video_dir, **settings.sampling())


def plan_tiles(video_meta: dict, settings: AnnotateSettings) -> list:
    """The tiles of every frame of this video (all frames have the video's size), the full-frame
    pass last when it runs (see AnnotateSettings.runs_full_frame)."""
    return frame_tiles(video_meta["width"], video_meta["height"], settings)


def frame_tiles(width: int, height: int, settings: AnnotateSettings) -> list:
    """The tiles of a `width` x `height` frame; VisionError past the tiles-per-frame limit."""
    tiles = tile_grid(
        width, height, settings.tile, settings.tile_h, settings.overlap, settings.runs_full_frame(width, height)
    )
    settings.check_tile_count(len(tiles), width, height)
    return tiles


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


def detect_tiles(frame_path, tiles, detector) -> list:
    """[(Tile, [Box, ...]), ...]: each tile's boxes in frame pixels (not yet merged).

    Each tile is cropped from the JPEG and goes through the net on its own.
    """
    image = read_frame(frame_path)
    return [
        (t, to_frame(detector.detect(image[t.y : t.y + t.h, t.x : t.x + t.w]), t)) for t in (Tile(*x) for x in tiles)
    ]


def detect_jobs(video_dir, jobs, detector) -> dict:
    """Run a chunk of [frame_name, tile] jobs; {frame_name: [[tile, [box JSON, ...]], ...]} for the chunk.

    The result is small JSON (tiles and boxes only), fit for a Celery result and a chord.
    """
    by_frame = {}
    for name, tile in jobs:
        by_frame.setdefault(name, []).append(Tile.from_json(tile))
    images = Path(video_dir) / IMAGES_DIR
    return {
        name: [
            [t.to_json(), boxes_to_json(boxes)] for t, boxes in detect_tiles(images / f"{name}.jpg", tiles, detector)
        ]
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


def label_frames(video_dir, video_meta: dict, detections_by_frame: dict, settings: AnnotateSettings) -> int:
    """Write labels/NNNNNN.txt for every frame of the video (empty if it has no box) and
    detections.jsonl, and remove label files of frames that no longer exist. Returns the number of
    merged boxes. detections_by_frame: {frame name: [(Tile, [Box]), ...]} (from gather_detections)."""
    video_dir = Path(video_dir)
    labels = video_dir / LABELS_DIR
    labels.mkdir(parents=True, exist_ok=True)
    frames = set(video_meta["frames"])
    unknown = sorted(set(detections_by_frame) - frames)
    if unknown:
        raise VisionError(f"detections for frames not in video.json: {unknown[:3]}; re-plan the video")
    for stale in frame_label_files(labels):
        if stale.stem not in frames:
            stale.unlink()
    written, records = 0, []
    w, h = video_meta["width"], video_meta["height"]
    for name in video_meta["frames"]:
        per_tile = detections_by_frame.get(name, [])
        merged = merge_frame(per_tile, settings, w, h)
        write_yolo_labels(labels / f"{name}.txt", [b for b, _ in merged], w, h)
        records.append(frame_record(name, per_tile, merged))
        written += len(merged)
    write_detections(video_dir / DETECTIONS_NAME, records)
    return written


def remergeable(video_dir, video_meta: dict, settings: AnnotateSettings) -> bool:
    """Whether the previous run saw the same frames with the same detection settings and left
    detections.jsonl for every frame: then only merging needs doing again, no YOLO."""
    previous = _previous_record(video_dir)
    record = annotation_record(video_meta, settings)
    if not previous or any(previous.get(k) != record[k] for k in ("video_sha256", "detection", "frames")):
        return False
    try:
        return set(read_detections(Path(video_dir) / DETECTIONS_NAME)) == set(video_meta["frames"])
    except VisionError:
        return False


def remerge_video(video_dir, video_meta: dict, settings: AnnotateSettings) -> int:
    """Labels again from detections.jsonl's raw per-tile boxes with the settings' merge options."""
    records = read_detections(Path(video_dir) / DETECTIONS_NAME)
    return label_frames(video_dir, video_meta, {n: raw_detections(r) for n, r in records.items()}, settings)


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


def annotation_record(video_meta: dict, settings: AnnotateSettings, static_rows=None) -> dict:
    """What the labels depend on: source checksum, detection and merge fingerprints, static boxes."""
    static_sha = None if static_rows is None else hashlib.sha256(format_labels(static_rows).encode("ascii")).hexdigest()
    return {
        "video_sha256": video_meta["sha256"],
        "detection": settings.fingerprint("detection"),
        "merge": settings.fingerprint("merge"),
        "static_sha256": static_sha,
        "frames": list(video_meta["frames"]),
    }


def _previous_record(video_dir) -> dict | None:
    try:
        return json.loads((Path(video_dir) / RECORD_NAME).read_text(encoding="utf-8")).get("record")
    except (OSError, ValueError, AttributeError):
        return None


def reusable_summary(video_dir, video_meta: dict, settings: AnnotateSettings, static_rows=None):
    """The summary of a previous complete run with the same inputs, or None.

    A run is complete when annotation.json (written last) matches and every label file exists.
    """
    if _previous_record(video_dir) != annotation_record(video_meta, settings, static_rows):
        return None
    labels = Path(video_dir) / LABELS_DIR
    if not all((labels / f"{n}.txt").is_file() for n in video_meta["frames"]):
        return None
    previous = json.loads((Path(video_dir) / RECORD_NAME).read_text(encoding="utf-8"))
    return {**previous["summary"], "reused": True}


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
    video_dir, video_meta: dict, settings: AnnotateSettings, static_rows=None, remerged: bool = False
) -> dict:
    """After all frames are labelled: classes.txt, static suggestions (from the detector's boxes),
    static propagation, then annotation.json (written last: it marks the video complete).
    Idempotent: run again (a redelivered task), it writes the same bytes.
    Returns the summary (counts per class, frames, tiles, where the output is; `remerged` when the
    labels came from detections.jsonl without YOLO; a decoding `warning`)."""
    video_dir = Path(video_dir)
    labels = video_dir / LABELS_DIR
    names = read_classes(settings.model.names)
    write_classes(video_dir / CLASSES_NAME, names)
    suggestions = suggest_static(labels, out_path=video_dir / SUGGESTIONS_NAME, ignore=static_rows or ())
    if static_rows:
        propagate_static(labels, static_rows)
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
        "static_boxes": len(static_rows or ()),
        "static_suggestions": len(suggestions),
        "truncated": bool(video_meta.get("truncated")),
        "warning": decode_warning(video_meta, settings),
        "full_frame": settings.runs_full_frame(video_meta["width"], video_meta["height"]),
        "remerged": remerged,
        "reused": False,
    }
    record = {"record": annotation_record(video_meta, settings, static_rows), "summary": summary}
    write_text_atomic(video_dir / RECORD_NAME, json.dumps(record, indent=1) + "\n")
    return summary


def write_video_previews(video_dir, settings: AnnotateSettings) -> None:
    """previews/ (every frame with its boxes) and contact_sheet.png, with the model's class names."""
    from .preview import write_previews

    write_previews(video_dir, read_classes(settings.model.names))


def annotate_video(
    video, out_dir, settings: AnnotateSettings, static=None, progress=None, preview: bool = False
) -> dict:
    """Annotate one video in this process; the reference for the distributed run.

    out_dir: dataset root; the video's files go to `video_out_dir(out_dir, video)`.
    static: path of a static_labels.txt (YOLO format) or None.
    progress: optional callable progress(stage, done, total), stage 'frames' or 'tiles'.
    preview: also write previews/ and contact_sheet.png.
    Returns the summary of `finish_video` ('reused': True if nothing needed to be redone,
    'remerged': True if only the merge ran again).
    """
    from .detector import get_detector

    settings.validate()
    static_rows = read_static_labels(static) if static is not None else None
    video_dir = video_out_dir(out_dir, video)
    meta = prepare_video(video, video_dir, settings)
    decode_warning(meta, settings)
    if progress:
        progress("frames", len(meta["frames"]), len(meta["frames"]))
    summary = reusable_summary(video_dir, meta, settings, static_rows)
    if summary is None and remergeable(video_dir, meta, settings):
        remerge_video(video_dir, meta, settings)
        summary = finish_video(video_dir, meta, settings, static_rows, remerged=True)
    if summary is None:
        detector = get_detector(settings.detector_spec())
        tiles = plan_tiles(meta, settings)
        jobs = tile_jobs(meta, tiles)
        results = []
        for done, chunk in enumerate(chunk_jobs(jobs, len(tiles)), start=1):
            results.append(detect_jobs(video_dir, chunk, detector))
            if progress:
                progress("tiles", done * len(tiles), len(jobs))
        label_frames(video_dir, meta, gather_detections(results), settings)
        summary = finish_video(video_dir, meta, settings, static_rows)
    if preview:
        write_video_previews(video_dir, settings)
    return summary
