"""Pictures for a person to check the labels: frames with their boxes drawn, and one contact
sheet (a grid of small previews) per video. Drawn from the label files, so they show exactly
what a trainer will see, static boxes included.
"""

import colorsys
import math
from pathlib import Path

import cv2
import numpy as np

from .errors import VisionError
from .files import write_bytes_atomic
from .frames import FRAME_IMAGE_NAME, IMAGES_DIR
from .labels import read_yolo_labels, row_to_box

PREVIEWS_DIR = "previews"
CONTACT_SHEET_NAME = "contact_sheet.png"


def class_color(cls: int) -> tuple:
    """A stable, distinct BGR colour per class index (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((cls * 0.618033988749895) % 1.0, 0.85, 1.0)
    return (int(b * 255), int(g * 255), int(r * 255))


def draw_boxes(image: np.ndarray, boxes, names) -> np.ndarray:
    """A copy of `image` with each box outlined and labelled with its class name (and the
    confidence when below 1). `boxes` are pixel boxes of this image."""
    out = image.copy()
    thickness = max(1, round(min(out.shape[:2]) / 300))
    for b in boxes:
        color = class_color(b.cls)
        p1, p2 = (int(round(b.x1)), int(round(b.y1))), (int(round(b.x2)), int(round(b.y2)))
        cv2.rectangle(out, p1, p2, color, thickness)
        text = names[b.cls] if b.cls < len(names) else str(b.cls)
        if b.conf < 1.0:
            text += f" {b.conf:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        top = max(p1[1] - th - base - 2, 0)
        cv2.rectangle(out, (p1[0], top), (p1[0] + tw + 2, top + th + base + 2), color, -1)
        cv2.putText(out, text, (p1[0] + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def contact_sheet(images, columns: int = 6, cell_width: int = 256) -> np.ndarray:
    """Images scaled to `cell_width` pixels wide (aspect kept) in a grid, row by row; cells
    are as tall as the tallest scaled image, unused space black."""
    if not images:
        raise VisionError("contact sheet needs at least one image")
    scaled = [
        cv2.resize(
            im, (cell_width, max(1, round(im.shape[0] * cell_width / im.shape[1]))), interpolation=cv2.INTER_AREA
        )
        for im in images
    ]
    cell_h = max(s.shape[0] for s in scaled)
    columns = min(columns, len(scaled))
    rows = math.ceil(len(scaled) / columns)
    sheet = np.zeros((rows * cell_h, columns * cell_width, 3), dtype=np.uint8)
    for i, s in enumerate(scaled):
        y, x = (i // columns) * cell_h, (i % columns) * cell_width
        sheet[y : y + s.shape[0], x : x + cell_width] = s
    return sheet


def evenly_spaced(items, count: int) -> list:
    """At most `count` items spread evenly over the list, first and last included."""
    if len(items) <= count:
        return list(items)
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)] if count > 1 else [items[0]]


def write_image(path, image: np.ndarray, quality: int = 90) -> Path:
    """Encode by the file extension (.jpg or .png) and write atomically."""
    ext = Path(path).suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in (".jpg", ".jpeg") else []
    ok, data = cv2.imencode(ext, image, params)
    if not ok:
        raise VisionError(f"cannot encode image as {ext}: {path}")
    return write_bytes_atomic(path, data.tobytes())


def write_previews(video_dir, names, sheet_frames: int = 36, columns: int = 6, cell_width: int = 256) -> Path:
    """previews/NNNNNN.jpg for every frame (boxes from labels/), and contact_sheet.png from up to
    `sheet_frames` of them spread over the video. Returns the contact sheet's path."""
    video_dir = Path(video_dir)
    frames = sorted(p for p in (video_dir / IMAGES_DIR).iterdir() if FRAME_IMAGE_NAME.match(p.name))
    if not frames:
        raise VisionError(f"no frames in {video_dir / IMAGES_DIR}; extract frames first")
    chosen = set(evenly_spaced(frames, sheet_frames))
    sheet_images = []
    for frame in frames:
        image = cv2.imread(str(frame), cv2.IMREAD_COLOR)
        if image is None:
            raise VisionError(f"cannot read frame image {frame}; re-extract the frames")
        label = video_dir / "labels" / f"{frame.stem}.txt"
        rows = read_yolo_labels(label) if label.exists() else []
        h, w = image.shape[:2]
        drawn = draw_boxes(image, [row_to_box(r, w, h) for r in rows], names)
        write_image(video_dir / PREVIEWS_DIR / frame.name, drawn)
        if frame in chosen:
            sheet_images.append(drawn)
    return write_image(video_dir / CONTACT_SHEET_NAME, contact_sheet(sheet_images, columns, cell_width))
