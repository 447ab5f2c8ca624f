"""Pure annotation logic: frames, tiles, YOLO over cv2.dnn, box merging, YOLO labels, static
objects, previews. Imports only NumPy, OpenCV and the standard library; no Celery, no Redis.
"""

from .boxes import Box
from .errors import VisionError
from .settings import AnnotateSettings, ModelSpec
from .tiling import Tile, tile_grid

__all__ = ["AnnotateSettings", "Box", "ModelSpec", "Tile", "VisionError", "tile_grid"]
