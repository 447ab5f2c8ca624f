"""The gold set (benchmarks/gold/): boxes a person drew on 30 vtest frames and the native-large photos.

Layout of a gold directory:

  classes.txt         one class name per line (COCO's 80, line i is class i)
  labels/NAME.txt     YOLO rows `class cx cy w h` (normalized) of frame NAME; an empty file is a
                      frame with nothing to label
  images.sha256       `sha256  NAME.png` per frame: the SHA-256 of the frame's decoded pixels
                      (height, width, 3 bytes, then the BGR bytes), not of the PNG file, so another
                      zlib does not matter

The images are not committed: `build_images` rebuilds them from package registries (vtest.avi in
Debian's opencv-doc, the photos of benchmarks/native_large.py) into a cache directory and checks
each against images.sha256. `load` reads the set back; a label whose class is not in classes.txt,
or a frame with no image, is a GoldError of one line naming the file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import native_large
import numpy as np

from vision.errors import VisionError
from vision.labels import read_classes, read_yolo_labels, row_to_box
from workers import asset_cache, config

GOLD_DIR = Path(__file__).resolve().parent / "gold"
VTEST_FRAMES = tuple(range(0, 750, 25))  # 0, 25, ..., 725: 30 frames


class GoldError(ValueError):
    """A one-line reason the gold set cannot be read, naming the file."""


@dataclass(frozen=True)
class GoldFrame:
    name: str
    image: Path
    width: int
    height: int
    boxes: tuple  # vision.boxes.Box in pixels, conf 1


def images_dir() -> Path:
    """Where the rebuilt gold images live: the user's cache, beside the assets."""
    return config.load().cache / "gold"


def pixels_sha256(image: np.ndarray) -> str:
    h = hashlib.sha256(np.asarray(image.shape, dtype="<u4").tobytes())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


def source_images() -> dict:
    """{frame name: BGR array} of every gold frame, decoded from the registry assets."""
    out = {}
    cap = cv2.VideoCapture(str(asset_cache.ensure("vtest.avi")))
    for i in range(VTEST_FRAMES[-1] + 1):
        ok, frame = cap.read()
        if not ok:
            raise GoldError(f"{asset_cache.location('vtest.avi')} ended before frame {i}")
        if i in VTEST_FRAMES:
            out[f"vtest_{i:06d}"] = frame
    cap.release()
    for photo in native_large.PHOTOS:
        out[photo.name] = native_large.load(photo)
    return out


def read_digests(gold_dir: Path = GOLD_DIR) -> dict:
    path = gold_dir / "images.sha256"
    digests = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            digests[Path(name).stem] = digest
    return digests


def build_images(out_dir: Path | None = None, gold_dir: Path = GOLD_DIR) -> Path:
    """Rebuild every gold frame as out_dir/NAME.png and check its pixels against images.sha256;
    GoldError naming the frame if one differs (another decoder gave other pixels: do not score)."""
    out_dir = out_dir or images_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    digests = read_digests(gold_dir)
    for name, image in source_images().items():
        got = pixels_sha256(image)
        if name in digests and got != digests[name]:
            raise GoldError(
                f"{out_dir / (name + '.png')}: pixels have sha256 {got[:12]}…, images.sha256 says "
                f"{digests[name][:12]}…: this decoder gives other pixels; the gold boxes may not fit them"
            )
        path = out_dir / f"{name}.png"
        part = path.with_name(path.stem + ".part.png")
        cv2.imwrite(str(part), image)
        part.replace(path)
    return out_dir


def load(gold_dir: Path = GOLD_DIR, images: Path | None = None) -> list:
    """Every gold frame with its boxes, by name. GoldError (one line, naming the file) when a label's
    class is not in classes.txt or a labelled frame has no image in `images` (default images_dir())."""
    images = images or images_dir()
    try:
        classes = read_classes(gold_dir / "classes.txt")
    except VisionError as e:
        raise GoldError(str(e)) from None
    frames = []
    for path in sorted((gold_dir / "labels").glob("*.txt")):
        image = images / f"{path.stem}.png"
        if not image.is_file():
            raise GoldError(f"{path}: gold frame has no image {image}; run benchmarks/gold/build.py")
        try:
            rows = read_yolo_labels(path)
        except VisionError as e:
            raise GoldError(str(e)) from None
        for n, row in enumerate(rows, start=1):
            if row.cls >= len(classes):
                raise GoldError(
                    f"{path}: row {n} has class {row.cls}, not in {gold_dir / 'classes.txt'} "
                    f"({len(classes)} classes, 0..{len(classes) - 1})"
                )
        h, w = cv2.imread(str(image), cv2.IMREAD_UNCHANGED).shape[:2]
        frames.append(GoldFrame(path.stem, image, w, h, tuple(row_to_box(r, w, h) for r in rows)))
    return frames
