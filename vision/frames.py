"""Decode a video into numbered JPEG frames and a `video.json` that describes them.

Frames are numbered 1, 2, 3, ... in the order they are written (not by source index), which is
what LabelImg and YOLO trainers pair with `labels/000001.txt`. The source frame index of each
written frame is kept in `video.json`. A second call with the same source (by checksum) and the
same sampling finds everything in place and returns without decoding.
"""

import hashlib
import json
import math
import re
from pathlib import Path

import cv2

from .errors import VisionError
from .files import write_bytes_atomic, write_text_atomic

IMAGES_DIR = "images"
VIDEO_META_NAME = "video.json"
FRAME_IMAGE_NAME = re.compile(r"^\d{6}\.jpg$")


def frame_name(number: int) -> str:
    """The stem of frame `number` (1-based): '000001'."""
    return f"{number:06d}"


def file_sha256(path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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


def _reusable(out_dir, meta, sha256: str, sampling: dict) -> bool:
    return (
        meta is not None
        and meta.get("sha256") == sha256
        and meta.get("sampling") == sampling
        and all(p.is_file() for p in frame_paths(out_dir, meta))
    )


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


def extract_frames(
    video_path, out_dir, every: int = 1, fps: float = None, max_frames: int = None, jpeg_quality: int = 95
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
    """
    video_path = Path(video_path)
    out_dir = Path(out_dir)
    sampling = sampling_settings(every, fps, max_frames, jpeg_quality)
    cap = _open_video(video_path)
    try:
        sha256 = file_sha256(video_path)
        previous = read_video_meta(out_dir)
        if _reusable(out_dir, previous, sha256, sampling):
            return {**previous, "reused": True}
        source_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        header_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        images = out_dir / IMAGES_DIR
        images.mkdir(parents=True, exist_ok=True)
        params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
        names, sources, index, capped = [], [], 0, False
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if keeps_frame(index, source_fps, every, sampling["fps"]):
                if max_frames is not None and len(names) >= max_frames:
                    capped = True
                    break
                height, width = frame.shape[:2]
                ok, data = cv2.imencode(".jpg", frame, params)
                if not ok:
                    raise VisionError(f"cannot encode frame {index} of {video_path} as JPEG")
                name = frame_name(len(names) + 1)
                write_bytes_atomic(images / f"{name}.jpg", data.tobytes())
                names.append(name)
                sources.append(index)
            index += 1
    finally:
        cap.release()
    if not names and header_count <= 0:
        raise VisionError(f"video has zero frames: {video_path}; nothing to annotate, give a video with frames")
    if not names:
        raise VisionError(
            f"no frame of {video_path} decodes (its header announces {header_count}): "
            "the file is truncated or corrupt; re-encode or replace it"
        )
    _remove_stale_images(images, {f"{n}.jpg" for n in names})
    meta = {
        "source": str(video_path.resolve()),
        "sha256": sha256,
        "width": width,
        "height": height,
        "fps": source_fps,
        "frame_count": header_count,
        "frames_decoded": index if not capped else None,
        "truncated": (not capped) and 0 < index < header_count,
        "frames_written": len(names),
        "sampling": sampling,
        "frames": names,
        "source_frames": sources,
    }
    write_text_atomic(out_dir / VIDEO_META_NAME, json.dumps(meta, indent=1) + "\n")
    return {**meta, "reused": False}
