"""One training dataset from many annotated videos: YOLO (Ultralytics layout) or COCO.

    YOLO   OUT/images/{train,val}/NAME.jpg, OUT/labels/{train,val}/NAME.txt, OUT/data.yaml
    COCO   OUT/images/{train,val}/NAME.jpg, OUT/annotations/instances_{train,val}.json

NAME is `<video folder>_<frame>` (a suffix -2, -3 ... if two sources share a video folder name),
so names stay unique across videos. Images are hard links to the extracted frames where the file
system allows, copies otherwise. COCO boxes the detector wrote carry its `score`; boxes a person
drew or a static box carry none.

The split never puts near-identical neighbouring frames on both sides:
    several videos   by video: videos (shuffled with the seed) go to val while that brings the val
                     share of frames closer to 1 - split; at least one video on each side;
    one video        by one contiguous block of frames: the val block (1 - split of the frames)
                     starts at a seeded position, so only its two borders touch train frames.

Everything is read and checked (label files parse, classes agree, the target lies outside every
source) before anything is written. A re-export into a folder a previous export wrote replaces
it; any other non-empty target is refused.
"""

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from .corrections import corrected_frames, recorded_hashes
from .datasets import RECORD_NAME, video_dirs
from .detections import DETECTIONS_NAME, merged_boxes, read_detections
from .errors import VisionError
from .files import write_text_atomic
from .frames import IMAGES_DIR, read_video_meta
from .labels import box_to_row, format_labels, read_classes, read_yolo_labels

FORMATS = ("yolo", "coco")
MARKER = "export.json"
SPLITS = ("train", "val")


@dataclass
class Frame:
    """One exported frame: where its image is, its unique name, its label rows and their scores."""

    video: str
    name: str
    image: Path
    rows: list
    scores: list  # the detector's confidence of each row, or None for a row a person or a static file gave
    width: int
    height: int


def check_split(split: float) -> float:
    if isinstance(split, bool) or not isinstance(split, (int, float)) or not 0.0 < split < 1.0:
        raise VisionError(f"--split is the train share of the frames, strictly between 0 and 1; got {split!r}")
    return float(split)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _unique(name: str, taken: set) -> str:
    out, n = name, 1
    while out in taken:
        n += 1
        out = f"{name}-{n}"
    taken.add(out)
    return out


def collect(sources, corrected_only: bool = False) -> tuple[list, list, dict]:
    """(names, [video name, ...], {video name: [Frame]}) of every annotated video under `sources`,
    every label file read (VisionError with file and line for a broken one)."""
    folders = [d.resolve() for s in sources for d in video_dirs(s)]
    names, taken, videos = None, set(), {}
    for folder in folders:
        classes = read_classes(folder / "classes.txt")
        if names is None:
            names = classes
        elif classes != names:
            raise VisionError(
                f"{folder} was annotated with other classes than {folders[0]}; export videos of one model together"
            )
        meta = read_video_meta(folder)
        keep = set(meta["frames"])
        if corrected_only:
            keep &= set(corrected_frames(folder / "labels", recorded_hashes(folder / RECORD_NAME)))
        scores = _auto_scores(folder, meta)
        video = _unique(folder.name, taken)
        frames = []
        for name in meta["frames"]:
            label, image = folder / "labels" / f"{name}.txt", folder / IMAGES_DIR / f"{name}.jpg"
            if name not in keep or not label.is_file() or not image.is_file():
                continue
            rows = read_yolo_labels(label)
            auto = scores.get(name, {})
            frames.append(
                Frame(video, f"{video}_{name}", image, rows, [auto.get(r) for r in rows], meta["width"], meta["height"])
            )
        videos[video] = frames
    return names or [], list(videos), videos


def _auto_scores(folder: Path, meta: dict) -> dict:
    """{frame: {label row: confidence}} of the boxes the detector put in the label files."""
    try:
        records = read_detections(folder / DETECTIONS_NAME)
    except VisionError:
        return {}
    w, h = meta["width"], meta["height"]
    return {n: {box_to_row(b, w, h): b.conf for b, _ in merged_boxes(r)} for n, r in records.items()}


def split_videos(videos: dict, split: float, seed: int) -> dict:
    """{video name: "train" | "val" | None}: None for a single video, which is split by block."""
    names = [v for v in videos if videos[v]]
    if len(names) < 2:
        return dict.fromkeys(videos)
    rng = random.Random(seed)
    order = sorted(names)
    rng.shuffle(order)
    total = sum(len(videos[v]) for v in names)
    target, val = (1.0 - split) * total, 0
    side = dict.fromkeys(videos, "train")
    for v in order:
        if not any(s == "val" for s in side.values()) or abs(val + len(videos[v]) - target) < abs(val - target):
            side[v], val = "val", val + len(videos[v])
    if all(side[v] == "val" for v in names):  # keep one video for training
        side[max(names, key=lambda v: len(videos[v]))] = "train"
    return side


def split_block(count: int, split: float, seed: int) -> list:
    """The side of each of `count` consecutive frames: one contiguous val block at a seeded start."""
    val = min(max(round((1.0 - split) * count), 1 if count > 1 else 0), count - 1 if count > 1 else 0)
    start = random.Random(seed).randint(0, count - val) if count else 0
    return ["val" if start <= i < start + val else "train" for i in range(count)]


def _check_target(out: Path, sources) -> None:
    for s in sources:
        for folder in video_dirs(s):
            root = Path(s).resolve()
            if _inside(out, root) or _inside(out, folder.resolve()):
                raise VisionError(
                    f"export target {out} lies inside the source dataset {root}; give a folder outside it"
                )
            if _inside(root, out):
                raise VisionError(f"export target {out} holds the source dataset {root}; give another folder")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file())):
        raise VisionError(f"export target {out} exists and is not an earlier export; give a new or empty folder")


def _place(image: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(image, target)
    except OSError:
        shutil.copyfile(image, target)


def _yaml_string(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def _data_yaml(out: Path, names) -> str:
    return (
        "# written by `cvfleet export`; train with: yolo train data=" + str(out / "data.yaml") + "\n"
        f"path: {_yaml_string(str(out))}\ntrain: images/train\nval: images/val\n"
        f"nc: {len(names)}\nnames:\n" + "".join(f"  {i}: {_yaml_string(n)}\n" for i, n in enumerate(names))
    )


def _coco(frames: list, names) -> dict:
    images, annotations = [], []
    for image_id, f in enumerate(frames, start=1):
        images.append({"id": image_id, "file_name": f"{f.name}.jpg", "width": f.width, "height": f.height})
        for row, score in zip(f.rows, f.scores):
            x1, y1, x2, y2 = row.corners()
            w, h = (x2 - x1) * f.width, (y2 - y1) * f.height
            ann = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": row.cls + 1,
                "bbox": [x1 * f.width, y1 * f.height, w, h],
                "area": w * h,
                "iscrowd": 0,
            }
            if score is not None:
                ann["score"] = score
            annotations.append(ann)
    categories = [{"id": i + 1, "name": n, "supercategory": "object"} for i, n in enumerate(names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def export(sources, out, fmt: str = "yolo", split: float = 0.8, seed: int = 0, corrected_only=False, progress=None):
    """Export the annotated videos under `sources` into `out`; returns a summary dict.
    progress: optional callable(done, total) per frame written."""
    if fmt not in FORMATS:
        raise VisionError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    split = check_split(split)
    out = Path(out).resolve()
    _check_target(out, sources)
    names, order, videos = collect(sources, corrected_only)
    sides = split_videos(videos, split, seed)
    frames = {s: [] for s in SPLITS}
    for v in order:
        blocks = [sides[v]] * len(videos[v]) if sides[v] else split_block(len(videos[v]), split, seed)
        for f, side in zip(videos[v], blocks):
            frames[side].append(f)
    total = sum(len(f) for f in frames.values())
    if not total:
        raise VisionError(
            "nothing to export: no labelled frames" + (" corrected by a person" if corrected_only else "")
        )

    if out.exists():
        for part in ("images", "labels", "annotations", "data.yaml", MARKER):
            target = out / part
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
    done = 0
    for side in SPLITS:
        for f in frames[side]:
            _place(f.image, out / "images" / side / f"{f.name}.jpg")
            if fmt == "yolo":
                write_text_atomic(out / "labels" / side / f"{f.name}.txt", format_labels(f.rows))
            done += 1
            if progress:
                progress(done, total)
        if fmt == "coco":
            coco = _coco(frames[side], names)
            write_text_atomic(out / "annotations" / f"instances_{side}.json", json.dumps(coco) + "\n")
    if fmt == "yolo":
        write_text_atomic(out / "data.yaml", _data_yaml(out, names))
    summary = {
        "format": fmt,
        "out": str(out),
        "videos": len([v for v in order if videos[v]]),
        "frames": {s: len(frames[s]) for s in SPLITS},
        "boxes": sum(len(f.rows) for fs in frames.values() for f in fs),
        "split_by": "video" if any(sides.values()) else "block",
        "split": split,
        "seed": seed,
        "corrected_only": bool(corrected_only),
        "sources": [str(Path(s).resolve()) for s in sources],
    }
    write_text_atomic(out / MARKER, json.dumps(summary, indent=1) + "\n")
    return summary
