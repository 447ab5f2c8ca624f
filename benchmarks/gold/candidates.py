"""Candidate boxes for the gold set, review sheets to look at, and the labels the review decided.

  python benchmarks/gold/candidates.py sheets DIR    candidates of every gold frame drawn as DIR/NAME.png
  python benchmarks/gold/candidates.py apply         labels/NAME.txt from the candidates and review.txt

Candidates are the union of yolov3-tiny's boxes (the project's own Detector) at several scales, at
confidence 0.2: the whole frame at 1:1 (net input = frame size padded to 32), the whole frame at the
net's 416, 416 tiles at 1:1 merged by the default merge, and the frame upscaled 2x at 1:1. Boxes of
one class with IoU >= 0.5 are one candidate (the most confident); of two one inside the other
(IoS >= 0.8: a piece of an object at another scale) the larger stays; the review adds back a
person hidden that way.
Each sheet numbers the candidates and has a 50 px ruler on its border in frame pixels, so a box can
be fixed or added by reading it.

review.txt holds what a person decided on looking at each sheet, one line per frame:

  NAME: checked; del I,J; fix I X1 Y1 X2 Y2; fix I class=C; add C X1 Y1 X2 Y2; ...  # note

actions (any of them, any number) separated by ';'; candidates not deleted or fixed are accepted;
coordinates in frame pixels; C a class name (spaces allowed: `add sports ball ...`). A frame with
no line in review.txt gets no label file (it is not in the gold set).
"""

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gold_set  # noqa: E402
from bench_accuracy import NativeDetector, native_boxes  # noqa: E402

from vision.boxes import Box, boxes_from_json, boxes_to_json, corners, overlap_with  # noqa: E402
from vision.detector import Detector  # noqa: E402
from vision.labels import box_to_row, read_classes, write_yolo_rows  # noqa: E402
from vision.merge import merge_tiles, to_frame  # noqa: E402
from vision.pipeline import frame_tiles  # noqa: E402
from vision.settings import AnnotateSettings, ModelSpec  # noqa: E402
from workers import asset_cache  # noqa: E402

CONF = 0.2
HERE = Path(__file__).resolve().parent


def detectors():
    settings = AnnotateSettings(model=ModelSpec(**asset_cache.yolov3_tiny_files()), conf=CONF)
    spec = {**settings.detector_spec(), "runtime": "opencv"}
    return settings, Detector(**spec), NativeDetector(**spec)


def raw_candidates(name: str, image: np.ndarray, settings, detector, native) -> list:
    """Every pass's boxes, cached as JSON beside the gold images (the passes are slow; the boxes are
    a pure function of the frame and the model)."""
    cache = gold_set.images_dir() / "candidates" / f"{name}.json"
    if cache.exists():
        return boxes_from_json(json.loads(cache.read_text()))
    h, w = image.shape[:2]
    found = list(native_boxes(native, image))
    found += detector.detect(image)
    tiles = frame_tiles(w, h, settings)
    per_tile = [(t, to_frame(detector.detect(image[t.y : t.y + t.h, t.x : t.x + t.w]), t)) for t in tiles]
    found += [b for b, _ in merge_tiles(per_tile, w, h)]
    big = cv2.resize(image, (w * 2, h * 2), interpolation=cv2.INTER_LINEAR)
    found += [Box(b.cls, b.conf, b.x1 / 2, b.y1 / 2, b.x2 / 2, b.y2 / 2) for b in native_boxes(native, big)]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(boxes_to_json(found)))
    return found


def candidates(found) -> list:
    """One box per object of the union: same-class boxes with IoU >= 0.5 are one (the most
    confident kept), then of two same-class boxes one inside the other (IoS >= 0.8) the smaller goes."""
    kept = []
    for b in sorted(found, key=lambda b: b.sort_key()):
        same = [k for k in kept if k.cls == b.cls]
        if not same or overlap_with(corners([b])[0], corners(same), "iou").max() < 0.5:
            kept.append(b)
    out = []
    for b in sorted(kept, key=lambda b: (-b.area, b.sort_key())):
        same = [k for k in out if k.cls == b.cls]
        if not same or overlap_with(corners([b])[0], corners(same), "ios").max() < 0.8:
            out.append(b)
    return sorted(out, key=lambda b: b.sort_key())


def draw(image: np.ndarray, boxes, names, scale: float) -> np.ndarray:
    """The image `scale`x with numbered boxes, and a ruler every 50 frame px on a grey border."""
    h, w = image.shape[:2]
    m = 30
    out = cv2.copyMakeBorder(
        cv2.resize(image, (int(w * scale), int(h * scale))), m, m, m, m, cv2.BORDER_CONSTANT, value=(90, 90, 90)
    )
    for v in range(0, max(w, h) + 1, 50):
        p = int(v * scale) + m
        big = v % 100 == 0
        if v <= w:
            cv2.line(out, (p, 0), (p, 8 if not big else 14), (255, 255, 255), 1)
            if big:
                cv2.putText(out, str(v), (p - 10, 26), 0, 0.35, (255, 255, 255), 1)
        if v <= h:
            cv2.line(out, (0, p), (8 if not big else 14, p), (255, 255, 255), 1)
            if big:
                cv2.putText(out, str(v), (0, p - 3), 0, 0.35, (255, 255, 255), 1)
    colors = [(0, 0, 255), (0, 200, 0), (255, 0, 0), (0, 200, 255), (255, 0, 255), (255, 255, 0)]
    for i, b in enumerate(boxes):
        c = colors[i % len(colors)]
        p1 = (int(b.x1 * scale) + m, int(b.y1 * scale) + m)
        p2 = (int(b.x2 * scale) + m, int(b.y2 * scale) + m)
        cv2.rectangle(out, p1, p2, c, 1)
        label = f"{i}" if names[b.cls] == "person" else f"{i} {names[b.cls]}"
        cv2.putText(out, label, (p1[0] + 2, p1[1] + 12), 0, 0.45, c, 1)
    return out


def parse_review(path: Path, names) -> dict:
    """{frame: [(action, args), ...]} from review.txt."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, rest = line.split(":", 1)
        actions = []
        for part in rest.split(";"):
            f = part.split()
            if not f or f[0] == "checked":
                continue
            if f[0] == "del":
                actions.append(("del", [int(i) for i in f[1].split(",")]))
            elif f[0] == "fix" and f[2].startswith("class="):
                actions.append(("fixcls", int(f[1]), names.index(f[2][6:])))
            elif f[0] == "fix":
                actions.append(("fix", int(f[1]), [float(v) for v in f[2:6]]))
            elif f[0] == "add":
                actions.append(("add", names.index(" ".join(f[1:-4])), [float(v) for v in f[-4:]]))
            else:
                raise ValueError(f"{path}: {name}: unknown action {part!r}")
        out[name.strip()] = actions
    return out


def apply(review: dict, cands: dict, sizes: dict) -> dict:
    """{frame: (boxes, counts)}: the candidates with the review's actions applied."""
    out = {}
    for name, actions in review.items():
        boxes = dict(enumerate(cands[name]))
        counts = {"candidates": len(boxes), "deleted": 0, "fixed": 0, "added": 0}
        added = []
        for a in actions:
            if a[0] == "del":
                for i in a[1]:
                    boxes.pop(i)
                    counts["deleted"] += 1
            elif a[0] == "fix":
                boxes[a[1]] = Box(boxes[a[1]].cls, 1.0, *a[2])
                counts["fixed"] += 1
            elif a[0] == "fixcls":
                b = boxes[a[1]]
                boxes[a[1]] = Box(a[2], 1.0, b.x1, b.y1, b.x2, b.y2)
                counts["fixed"] += 1
            else:
                added.append(Box(a[1], 1.0, *a[2]))
                counts["added"] += 1
        counts["accepted"] = counts["candidates"] - counts["deleted"] - counts["fixed"]
        out[name] = ([*boxes.values(), *added], counts)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("sheets", "apply"))
    ap.add_argument("dir", nargs="?", type=Path, default=Path("/tmp/gold-sheets"))
    ap.add_argument("--only", nargs="*", default=None, help="frame names")
    args = ap.parse_args()
    names = read_classes(HERE / "classes.txt")
    settings, detector, native = detectors()
    images = gold_set.source_images()
    if args.what == "sheets":
        args.dir.mkdir(parents=True, exist_ok=True)
        for name, image in images.items():
            if args.only and name not in args.only:
                continue
            boxes = candidates(raw_candidates(name, image, settings, detector, native))
            scale = 1.5 if image.shape[1] <= 800 else 1.0
            cv2.imwrite(str(args.dir / f"{name}.png"), draw(image, boxes, names, scale))
            listing = " ".join(f"{i}:{names[b.cls]}:{b.conf:.2f}" for i, b in enumerate(boxes))
            print(f"{name} {image.shape[1]}x{image.shape[0]} {len(boxes)} candidates: {listing}")
        return
    review = parse_review(HERE / "review.txt", names)
    cands = {n: candidates(raw_candidates(n, images[n], settings, detector, native)) for n in review}
    for name, (boxes, counts) in apply(review, cands, {}).items():
        h, w = images[name].shape[:2]
        write_yolo_rows(HERE / "labels" / f"{name}.txt", [box_to_row(b, w, h) for b in boxes])
        print(
            f"{name}: {len(boxes)} boxes: {counts['accepted']} accepted, {counts['fixed']} fixed, "
            f"{counts['added']} added, {counts['deleted']} deleted"
        )


if __name__ == "__main__":
    main()
