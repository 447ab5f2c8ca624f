"""How good are the labels against what a person drew? cvfleet's defaults and a plain YOLO pass,
scored against the gold set (benchmarks/gold/, README.md there says how its boxes were checked).

Two kinds of gold frames:

* vtest: 30 frames of vtest.avi (every 25th, 768x576), one clip: its content scale is found from 3
  of them, as `cvfleet annotate` finds a video's.
* native-large: the mosaic of benchmarks/native_large.py (2304x1728, the photos at their own size)
  for `--mosaic-frames` pan phases, each photo's gold boxes moved to where it sits.

Per frame, as bench_accuracy does: the frame through a JPEG at the default quality, then

  defaults   the tiles `cvfleet annotate` cuts (content scale, stride lattice, the full-frame pass)
             and its merge (vision.pipeline.merge_frame), all at the default settings
  plain      the whole frame once at the net's input size (416x416), as a plain YOLO run does

AP50 and AP50:95 come from pycocotools' COCOeval over the boxes each gives at the default
confidence (0.25), so the precision-recall curve ends there for both. COCO's AP averages over the
classes that have gold boxes: a box of a class no gold frame has costs nothing there, and is
counted by the precision line (one-to-one, same class, IoU >= 0.5; vision.scoring).
Ends with `gold AP50 defaults: A` and `gold AP50 plain: B`, over all gold frames scored.
`--cfg FILE` runs the bundled weights with another cfg (the bundled one decodes the 26x26 layer
with anchors the weights were not trained with: benchmarks/gold/README.md, Finding).
"""

import argparse
import contextlib
import io
import os
import sys
import time

import cv2
import gold_set
import native_large
from bench_accuracy import NativeDetector, as_annotated, native_boxes, per_tile
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from vision.content_scale import SAMPLE_FRAMES
from vision.detector import Detector
from vision.labels import read_classes
from vision.pipeline import content_scale, frame_tiles, merge_frame
from vision.scoring import Score, score_frame
from vision.settings import AnnotateSettings, ModelSpec
from workers import asset_cache

METHODS = ("defaults", "plain")


def coco_ap(gold: list, found: dict, classes: list) -> tuple[float, float]:
    """(AP50, AP50:95) of `found` [boxes per frame] against `gold` [boxes per frame], 0..1."""
    images = [{"id": i, "width": 1, "height": 1} for i in range(len(gold))]
    annotations = [
        {
            "id": len(images) + k,
            "image_id": i,
            "category_id": b.cls,
            "bbox": [b.x1, b.y1, b.width, b.height],
            "area": b.area,
            "iscrowd": 0,
        }
        for k, (i, b) in enumerate((i, b) for i, boxes in enumerate(gold) for b in boxes)
    ]
    detections = [
        {"image_id": i, "category_id": b.cls, "bbox": [b.x1, b.y1, b.width, b.height], "score": b.conf}
        for i, boxes in enumerate(found)
        for b in boxes
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": c, "name": n} for c, n in enumerate(classes)],
        }
        truth.createIndex()
        if not detections:
            return 0.0, 0.0
        result = truth.loadRes(detections)
        e = COCOeval(truth, result, "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return float(e.stats[1]), float(e.stats[0])


def label(frames, settings: AnnotateSettings, detector: Detector) -> dict:
    """{method: [boxes per frame]} for frames of one clip (one size, one content scale)."""
    h, w = frames[0].shape[:2]
    scale = content_scale(frames[:: max(1, len(frames) // SAMPLE_FRAMES)][:SAMPLE_FRAMES])
    tiles = frame_tiles(w, h, settings, scale)
    out = {m: [] for m in METHODS}
    for frame in frames:
        image = as_annotated(frame, settings.jpeg_quality)
        out["defaults"].append([b for b, _ in merge_frame(per_tile(detector, image, tiles), settings, w, h)])
        out["plain"].append(detector.detect(image))
    print(f"  {len(frames)} frames {w}x{h}, content scale {scale:g}: defaults {len(tiles)} forwards per frame, plain 1")
    return out


def report(name: str, gold: list, found: dict, classes: list) -> dict:
    aps = {}
    for method, boxes in found.items():
        ap50, ap = coco_ap(gold, boxes, classes)
        s = sum((score_frame(p, g) for p, g in zip(boxes, gold)), Score())
        aps[method] = ap50
        print(
            f"  {name:12s} {method:8s} AP50 {100 * ap50:5.1f}  AP50:95 {100 * ap:5.1f}  "
            f"recall {s.recall:.3f}  precision {s.precision:.3f}  ({s.matched} of {s.reference} gold boxes, "
            f"{s.predicted} given, dup {s.duplicates})"
        )
    return aps


def mosaic_gold(frames: list, count: int) -> tuple[list, list]:
    """(mosaic images, gold boxes per mosaic) from the gold photos, `count` pan phases."""
    by_name = {f.name: f for f in frames}
    photos = [p for p in native_large.PHOTOS if p.name in by_name]
    if not photos:
        return [], []
    images = {p.where(): cv2.imread(str(by_name[p.name].image), cv2.IMREAD_COLOR) for p in photos}
    clip, offsets = native_large.mosaic_frames(images, count)
    gold = [
        [b for p in photos for b in native_large.moved(by_name[p.name].boxes, *where[p.where()])] for where in offsets
    ]
    return clip, gold


def gold_against_the_1to1_reference(frames: list, settings: AnnotateSettings) -> Score:
    """The gold boxes of the native-large photos scored as if they were a labeler's output, against
    bench_accuracy's native-large reference (the detector at 1:1 on each photo alone, conf 0.3): what
    a perfect labeler would score there."""
    native = NativeDetector(**{**settings.detector_spec(), "runtime": "opencv", "conf": 0.3})
    total = Score()
    for f in frames:
        if f.name in {p.name for p in native_large.PHOTOS}:
            total = total + score_frame(list(f.boxes), native_boxes(native, cv2.imread(str(f.image))))
    return total


def run() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mosaic-frames", type=int, default=3, help="pan phases of the native-large mosaic")
    ap.add_argument("--cfg", default=None, help="another Darknet cfg for the bundled yolov3-tiny weights")
    args = ap.parse_args()
    gold_set.build_images()
    frames = gold_set.load()
    classes = read_classes(gold_set.GOLD_DIR / "classes.txt")
    files = asset_cache.yolov3_tiny_files()
    settings = AnnotateSettings(model=ModelSpec(**{**files, "cfg": args.cfg or files["cfg"]}))
    detector = Detector(**settings.detector_spec())
    print(
        f"machine: {os.cpu_count()} cores (shared), OpenCV {cv2.__version__}, runtime {settings.runtime}; "
        f"yolov3-tiny ({settings.model.cfg}), conf {settings.conf}, tile {settings.tile}, overlap {settings.overlap}; "
        f"{len(frames)} gold frames, {sum(len(f.boxes) for f in frames)} gold boxes"
    )
    start = time.perf_counter()
    vtest = [f for f in frames if f.name.startswith("vtest_")]
    clips = {}
    if vtest:
        clips["vtest"] = ([cv2.imread(str(f.image)) for f in vtest], [list(f.boxes) for f in vtest])
    mosaic, mosaic_boxes = mosaic_gold(frames, args.mosaic_frames)
    if mosaic:
        clips["native-large"] = (mosaic, mosaic_boxes)
    gold, found = [], {m: [] for m in METHODS}
    for name, (images, boxes) in clips.items():
        print(f"{name}:")
        out = label(images, settings, detector)
        report(name, boxes, out, classes)
        gold += boxes
        for m in METHODS:
            found[m] += out[m]
    print(f"all ({len(gold)} frames, {time.perf_counter() - start:.0f} s):")
    aps = report("all", gold, found, classes)
    perfect = gold_against_the_1to1_reference(frames, settings)
    print(
        f"the gold boxes themselves against native-large's 1:1 reference: recall {perfect.recall:.3f} "
        f"precision {perfect.precision:.3f} ({perfect.matched} of {perfect.predicted} gold boxes are in it)"
    )
    print(f"gold AP50 defaults: {100 * aps['defaults']:.1f}")
    print(f"gold AP50 plain: {100 * aps['plain']:.1f}")


def main() -> None:
    try:
        run()
    except (gold_set.GoldError, native_large.MosaicError) as e:
        sys.exit(f"bench_gold: {e}")


if __name__ == "__main__":
    main()
