"""Decode a video into numbered JPEG frames and a `video.json` that describes them.

Frames are numbered 1, 2, 3, ... in the order they are written (not by source index), which is
what LabelImg and YOLO trainers pair with `labels/000001.txt`. The source frame index of each
written frame is kept in `video.json`. A second call with the same source (by checksum) and the
same sampling finds everything in place and returns without decoding.

A long video can be extracted in segments, by several workers at once: `segment_bounds` cuts the
source indices into ranges [start, stop), the last open-ended; `extract_segment` seeks to `start`
and numbers its frames globally (`frames_before(start)` + 1, ...), so every frame gets the name,
pixels and JPEG bytes a single pass gives it; `join_segments` writes the single pass's video.json
from the parts in order. A seek is trusted only when checked: each part hashes the first frame it
decodes after its seek ("first") and the frame just past its range ("next"), decoded in sequence;
when one part's "next" differs from the following part's "first", the seek did not land on its
frame and the join returns None (extract again in one pass). `extract_frames` is the one-part case.
"""

import hashlib
import json
import math
import re
from pathlib import Path

import cv2

from .errors import VisionError
from .files import file_sha256, write_bytes_atomic, write_text_atomic

IMAGES_DIR = "images"
VIDEO_META_NAME = "video.json"
FRAME_IMAGE_NAME = re.compile(r"^\d{6}\.jpg$")


def frame_name(number: int) -> str:
    """The stem of frame `number` (1-based): '000001'."""
    return f"{number:06d}"


def sampling_settings(every: int = 1, fps: float = None, max_frames: int = None, jpeg_quality: int = 95) -> dict:
    """The sampling settings as recorded in video.json; VisionError if one is out of range."""
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise VisionError(f"'every' must be an integer >= 1 (keep every N-th frame), got {every!r}")
    if fps is not None and (not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0):
        raise VisionError(f"target fps must be a positive number, got {fps!r}")
    if fps is not None and every != 1:
        raise VisionError("give either 'every' (N-th frame) or a target 'fps', not both")
    if max_frames is not None and (not isinstance(max_frames, int) or max_frames < 1):
        raise VisionError(f"max_frames must be an integer >= 1, got {max_frames!r}")
    if not isinstance(jpeg_quality, int) or not 1 <= jpeg_quality <= 100:
        raise VisionError(f"jpeg_quality must be an integer in 1..100, got {jpeg_quality!r}")
    return {
        "every": every,
        "fps": None if fps is None else float(fps),
        "max_frames": max_frames,
        "jpeg_quality": jpeg_quality,
    }


def keeps_frame(index: int, source_fps: float, every: int, fps: float) -> bool:
    """Whether source frame `index` (0-based) is sampled.

    every N: frames 0, N, 2N, ... . Target fps f from a source at F fps: frame i is kept when
    floor(i * f / F) steps up, i.e. the first frame of each 1/f-second slot; f >= F keeps all.
    """
    if fps is None:
        return index % every == 0
    if not source_fps or source_fps <= 0 or fps >= source_fps:
        return True
    ratio = fps / source_fps
    return index == 0 or math.floor(index * ratio) != math.floor((index - 1) * ratio)


def frames_before(start: int, source_fps: float, sampling: dict) -> int:
    """How many source frames with index < `start` keeps_frame keeps: the frame number a segment
    starting at `start` counts on from. Closed form of keeps_frame's count, same float arithmetic."""
    if start <= 0:
        return 0
    fps = sampling["fps"]
    if fps is None:
        return (start - 1) // sampling["every"] + 1
    if not source_fps or source_fps <= 0 or fps >= source_fps:
        return start
    ratio = fps / source_fps
    # keeps_frame keeps 0 and each i where floor(i * ratio) steps up (by 1: ratio < 1); the steps
    # over 1..start-1 add up to floor((start - 1) * ratio) - floor(0)
    return 1 + math.floor((start - 1) * ratio)


def read_video_meta(out_dir):
    """The video.json of an extraction dir, or None if absent or unreadable."""
    try:
        return json.loads((Path(out_dir) / VIDEO_META_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def frame_paths(out_dir, meta: dict) -> list:
    """Paths of the written frames, in frame order."""
    images = Path(out_dir) / IMAGES_DIR
    return [images / f"{name}.jpg" for name in meta["frames"]]


def _open_video(path: Path):
    if not path.exists():
        raise VisionError(f"video not found: {path}; check the path")
    if not path.is_file():
        raise VisionError(f"not a video file: {path} is a directory")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise VisionError(
            f"not a readable video: {path}; OpenCV/FFmpeg cannot open it (give a video file such as .mp4 or .avi)"
        )
    return cap


def frame_size(video_path) -> tuple[int, int] | None:
    """(width, height) the container announces, or None if the file does not open as a video."""
    try:
        cap = _open_video(Path(video_path))
    except VisionError:
        return None
    try:
        size = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    finally:
        cap.release()
    return size if min(size) > 0 else None


def _remove_stale_images(images: Path, keep: set) -> None:
    for p in images.iterdir():
        if FRAME_IMAGE_NAME.match(p.name) and p.name not in keep:
            p.unlink()


def probe(video_path) -> dict:
    """What the container header says: {"source" (resolved path), "sha256", "width", "height", "fps",
    "frame_count"}; width/height/fps/frame_count are 0 when the header lacks them. Nothing is decoded
    beyond what opening needs. VisionError if the file is missing, a directory or not a video."""
    video_path = Path(video_path)
    cap = _open_video(video_path)
    try:
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        fps, count = float(cap.get(cv2.CAP_PROP_FPS) or 0.0), int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        cap.release()
    return {
        "source": str(video_path.resolve()),
        "sha256": file_sha256(video_path),
        "width": width,
        "height": height,
        "fps": fps,
        "frame_count": count,
    }


def sample_frames(video_path, info: dict, count: int) -> list:
    """Up to `count` decoded frames spread over the video (by seeking; the first ones when the header
    has no frame count): a look at the whole of it."""
    cap = _open_video(Path(video_path))
    frames = []
    try:
        total = info["frame_count"]
        spread = total > count
        for i in range(count):
            if spread:
                cap.set(cv2.CAP_PROP_POS_FRAMES, total * (i + 1) // (count + 1))
            ok, frame = cap.read()
            if ok and frame is not None:
                frames.append(frame)
    finally:
        cap.release()
    return frames


def reusable_meta(out_dir, info: dict, sampling: dict) -> dict | None:
    """The previous video.json of `out_dir` when it is of the same source (sha256), sampling and
    content scale and every frame file it names exists; else None (extract again)."""
    meta = read_video_meta(out_dir)
    if (
        isinstance(meta, dict)
        and meta.get("sha256") == info["sha256"]
        and meta.get("sampling") == sampling
        and meta.get("scale", 1.0) == info.get("scale", 1.0)
        and all(p.is_file() for p in frame_paths(out_dir, meta))
    ):
        return meta
    return None


def segment_bounds(frame_count: int, segments: int) -> list[tuple[int, int | None]]:
    """Source-index ranges [start, stop) that cut 0..frame_count into `segments` near-equal parts (fewer
    when there are fewer frames than segments, none empty); the last stop is None, to the end of the
    file, so frames past a header that undercounts are still extracted."""
    n = min(segments, frame_count)
    if n <= 1:
        return [(0, None)]
    starts = [k * frame_count // n for k in range(n)]
    return [(a, b) for a, b in zip(starts, starts[1:])] + [(starts[-1], None)]


def pixels_sha256(image) -> str:
    """Hex sha256 of a decoded frame's shape and raw pixels (tells two decoded frames apart)."""
    h = hashlib.sha256(repr((image.shape, str(image.dtype))).encode())
    h.update(image.tobytes())
    return h.hexdigest()


def _seek(cap, start: int) -> bool:
    """Ask the backend to make `start` the next frame read; False when it says it did not."""
    return bool(cap.set(cv2.CAP_PROP_POS_FRAMES, start)) and round(cap.get(cv2.CAP_PROP_POS_FRAMES)) == start


def extract_segment(
    video_path, out_dir, info: dict, sampling: dict, start: int = 0, stop: int | None = None, on_frame=None
) -> dict:
    """Decode source frames [start, stop) (stop None: to the end) and write each sampled one as
    `images/<global number>.jpg`, numbered as a single pass numbers it (frames_before(start) + 1, ...),
    up to sampling's max_frames. `info` is probe()'s; `sampling` is sampling_settings()'s.
    on_frame(name, source_index, image) runs right after each frame file is written (image: the BGR array).

    Returns the part join_segments needs, JSON-able: start, stop, names, sources (source index of
    each name), decoded (frames decoded in the range), ended (decoding stopped before `stop`: end of
    file, a frame that does not decode, or a seek the backend says missed), capped (max_frames reached),
    first (pixels_sha256 of the first frame decoded after the seek), next (of frame `stop`, decoded
    right after the range; None when stop is None or it does not decode), width and height (of the
    last frame written, else of the last decoded, else None).
    """
    video_path = Path(video_path)
    if start < 0 or (stop is not None and stop < start):
        raise ValueError(f"bad segment [{start}, {stop})")
    images = Path(out_dir) / IMAGES_DIR
    images.mkdir(parents=True, exist_ok=True)
    source_fps, every, fps = info["fps"], sampling["every"], sampling["fps"]
    max_frames = sampling["max_frames"]
    params = [cv2.IMWRITE_JPEG_QUALITY, sampling["jpeg_quality"]]
    before = frames_before(start, source_fps, sampling)
    names, sources = [], []
    decoded, ended, capped, first, after, size, written = 0, False, False, None, None, None, None
    cap = _open_video(video_path)
    try:
        if start > 0 and not _seek(cap, start):
            ended = True  # nothing decoded; join_segments finds out whether a single pass got further
        index = start
        while not ended and (stop is None or index < stop):
            ok, frame = cap.read()
            if not ok or frame is None:
                ended = True
                break
            decoded += 1
            if first is None:
                first = pixels_sha256(frame)
            size = frame.shape[1], frame.shape[0]
            if keeps_frame(index, source_fps, every, fps):
                if max_frames is not None and before + len(names) >= max_frames:
                    capped = True
                    break
                ok, data = cv2.imencode(".jpg", frame, params)
                if not ok:
                    raise VisionError(f"cannot encode frame {index} of {video_path} as JPEG")
                name = frame_name(before + len(names) + 1)
                write_bytes_atomic(images / f"{name}.jpg", data.tobytes())
                names.append(name)
                sources.append(index)
                written = size
                if on_frame is not None:
                    on_frame(name, index, frame)
            index += 1
        if not ended and not capped and stop is not None:
            ok, frame = cap.read()
            if ok and frame is not None:
                after = pixels_sha256(frame)
                first = first or after  # an empty range: the frame after the seek is frame `stop`
    finally:
        cap.release()
    width, height = written or size or (None, None)
    return {
        "start": start,
        "stop": stop,
        "names": names,
        "sources": sources,
        "decoded": decoded,
        "ended": ended,
        "capped": capped,
        "first": first,
        "next": after,
        "width": width,
        "height": height,
    }


def join_segments(info: dict, sampling: dict, parts: list[dict]) -> dict | None:
    """The video.json dict one pass over the video would write, from extract_segment's parts in order
    (they must tile [0, end) as segment_bounds cuts it).

    As in one pass, decoding stops at the first part that ended or capped: the frames of later parts
    are not in the result (write_meta removes their files). None when a seek was not exact: a part ran
    through its range and its "next" differs from the following part's "first" (extract again in one
    pass). VisionError, as extract_frames, when no frame decodes."""
    return _join(info, sampling, parts, info["source"])


def _join(info: dict, sampling: dict, parts: list[dict], shown) -> dict | None:
    names, sources, decoded, capped, size = [], [], 0, False, None
    stop = 0
    for k, part in enumerate(parts):
        if part["start"] != stop:
            raise ValueError(f"segment {k} starts at {part['start']}, not where the one before stops ({stop})")
        if k and parts[k - 1]["next"] != part["first"]:
            return None
        names += part["names"]
        sources += part["sources"]
        decoded += part["decoded"]
        if part["names"]:
            size = part["width"], part["height"]
        if part["capped"]:
            capped = True
            break
        if part["ended"]:
            break
        stop = part["stop"]
        if stop is None:
            raise ValueError(f"segment {k} runs to the end of the video but did not end")
    else:
        if stop is not None:
            raise ValueError(f"the segments stop at {stop}: the last one must run to the end (stop None)")
    header_count = info["frame_count"]
    if not names and header_count <= 0:
        raise VisionError(f"video has zero frames: {shown}; nothing to annotate, give a video with frames")
    if not names:
        raise VisionError(
            f"no frame of {shown} decodes (its header announces {header_count}): "
            "the file is truncated or corrupt; re-encode or replace it"
        )
    width, height = size
    return {
        "source": info["source"],
        "sha256": info["sha256"],
        "width": width,
        "height": height,
        "fps": info["fps"],
        "frame_count": header_count,
        "frames_decoded": decoded if not capped else None,
        "truncated": (not capped) and 0 < decoded < header_count,
        "frames_written": len(names),
        "sampling": sampling,
        "frames": names,
        "source_frames": sources,
        **({"scale": info["scale"]} if info.get("scale", 1.0) != 1.0 else {}),  # vision/content_scale.py
    }


def write_meta(out_dir, meta: dict) -> None:
    """Remove the frame files `meta` does not name (of an earlier sampling, or of segments past the
    end) and write it as video.json, atomically."""
    out_dir = Path(out_dir)
    images = out_dir / IMAGES_DIR
    if images.is_dir():
        _remove_stale_images(images, {f"{n}.jpg" for n in meta["frames"]})
    write_text_atomic(out_dir / VIDEO_META_NAME, json.dumps(meta, indent=1) + "\n")


def extract_frames(
    video_path,
    out_dir,
    every: int = 1,
    fps: float = None,
    max_frames: int = None,
    jpeg_quality: int = 95,
    info: dict | None = None,
) -> dict:
    """Write sampled frames to `out_dir/images/000001.jpg ...` and describe them in video.json.

    every: keep every N-th source frame; fps: keep frames at about this rate instead (give one of
    the two); max_frames: stop after writing this many; jpeg_quality: 1..100.
    Returns the video.json dict plus 'reused': True if a previous extraction with the same source
    checksum and sampling was complete and nothing was decoded.

    A video that decodes fewer frames than its header announces is truncated: the frames that do
    decode are written and video.json says 'truncated': true (the header count is an estimate for
    some containers, so this is a note, not an error). VisionError if the file is missing, not a
    video, or decodes no frame at all.

    One segment from 0 to the end: the same code extracts each segment of a parallel extraction.
    `info`: probe()'s, when the caller has it (with the video's content scale).
    """
    sampling = sampling_settings(every, fps, max_frames, jpeg_quality)
    info = info or probe(video_path)
    previous = reusable_meta(out_dir, info, sampling)
    if previous is not None:
        return {**previous, "reused": True}
    part = extract_segment(video_path, out_dir, info, sampling)
    meta = _join(info, sampling, [part], video_path)
    write_meta(out_dir, meta)
    return {**meta, "reused": False}
