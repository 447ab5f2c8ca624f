"""Every option of an annotation run in one frozen value that crosses the broker as JSON.

`fingerprint()` hashes the options that change the labels, so a resubmitted video with the same
settings can reuse what is already on disk.
"""

import dataclasses
import hashlib
import json
import numbers
from dataclasses import dataclass, field

from .content_scale import RULE_VERSION as CONTENT_SCALE_RULE
from .detector import RUNTIMES
from .errors import VisionError
from .frames import sampling_settings
from .merge import MERGE_METHODS, MERGE_METRICS, RULE_VERSION, check_merge_args
from .motion import check_threshold
from .onnx_runtime import require_onnxruntime
from .temporal import TEMPORAL_MODES, check_temporal
from .tiling import STRIDE, stride_align, tile_grid

MIN_TILE = 32  # pixels: one cell of a YOLO net's coarsest grid
COARSE_LEVEL = 2  # coarse tiles have this many times the tile's side (vision/merge.py, rule 6, says why)
MAX_TILES_PER_FRAME = 1024  # more is a typo (--tile 16), not a plan: --force accepts it


def _setting(default, help: str, type=None, choices=None):
    """A settings field with what a command line needs to offer it: help text, the value type when
    the default is None, the allowed values."""
    return field(default=default, metadata={"help": help, "type": type, "choices": choices})


@dataclass(frozen=True)
class ModelSpec:
    """Which net to load: Darknet `cfg` + `weights`, or an `onnx` file; `names` lists its
    classes (one per line); `input_size` is the square net input in pixels (multiple of 32)."""

    cfg: str = None
    weights: str = None
    onnx: str = None
    names: str = None
    input_size: int = 416

    def files(self) -> list[str]:
        """The model's files that are given (cfg, weights, onnx, names)."""
        return [p for p in (self.cfg, self.weights, self.onnx, self.names) if p]

    def validate(self) -> None:
        if self.onnx and (self.cfg or self.weights):
            raise VisionError("give either an ONNX model or a Darknet cfg + weights, not both")
        if not self.onnx and not (self.cfg and self.weights):
            raise VisionError("no model: give a Darknet cfg and weights, or an ONNX file")
        if not self.names:
            raise VisionError("no class names file for the model: give one name per line (e.g. coco.names)")
        if not _is_int(self.input_size) or self.input_size <= 0 or self.input_size % 32:
            raise VisionError(f"model input size must be a positive multiple of 32, got {self.input_size!r}")


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


@dataclass(frozen=True)
class AnnotateSettings:
    """Options of one annotation run.

    Sampling: every (N-th frame) or fps (target rate), max_frames, jpeg_quality (1..100).
    Tiling: tile (width in pixels), tile_h (height, default = tile), overlap (ratio), full_frame.
    Detection: model, conf, nms (IoU within a tile), classes (names to keep; empty = all), runtime
    ('onnxruntime', the default since it ran the fleet faster (benchmarks/bench_annotate.py), or
    'opencv': same model, boxes equal within float rounding but not bit for bit, so the runtime is
    part of the detection fingerprint).
    Merging across tiles: merge ('nms' or 'greedy'), metric ('iou' or 'ios'), merge_threshold,
    class_agnostic. Default NMS over IoS: with overlapping tiles most objects lie whole in some
    tile, and IoS drops the cut parts inside that whole box; greedy merging over IoS also joins a
    spurious large box (a 0.3 'person' spanning two people in vtest.avi) into a confident small
    one inside it and inflates it, so it is the option for objects larger than the overlap.
    """

    every: int = _setting(1, "Keep every N-th frame.")
    fps: float = _setting(None, "Or keep frames at this rate instead.", float)
    max_frames: int = _setting(None, "Stop after this many frames per video.", int)
    jpeg_quality: int = _setting(95, "JPEG quality of the extracted frames, 1..100.")
    tile: int = _setting(416, "Tile width in pixels.")
    tile_h: int = _setting(None, "Tile height (default: the width).", int)
    overlap: float = _setting(0.2, "Overlap of neighbouring tiles, 0 to <1.")
    full_frame: bool = _setting(
        None,
        "Also run the coarse views (tiles twice the size, and the whole frame once), so objects "
        "larger than the tile overlap are seen uncut [default: auto, whenever a frame is larger than one tile].",
        bool,
    )
    skip_still: float = _setting(
        None,
        "Reuse a tile's boxes while its pixels change by less than this many grey levels since it last "
        "went through YOLO (fixed cameras; e.g. 8) [default: off].",
        float,
    )
    model: ModelSpec = field(default_factory=ModelSpec)
    conf: float = _setting(0.25, "Confidence threshold.")
    nms: float = _setting(0.45, "IoU of the NMS within a tile.")
    classes: tuple = _setting((), "Comma-separated class names to keep (default: all).")
    runtime: str = _setting(
        "onnxruntime",
        "Run YOLO on onnxruntime (the Darknet model converted to ONNX once, cached beside the weights) "
        "or on OpenCV's dnn. Same boxes within float rounding; onnxruntime was faster on the fleet.",
        choices=RUNTIMES,
    )
    merge: str = _setting(
        "nms", "Across tile borders: keep the best box (nms) or join cut pieces (greedy).", choices=MERGE_METHODS
    )
    metric: str = _setting("ios", "Overlap that matches boxes across tiles.", choices=MERGE_METRICS)
    merge_threshold: float = _setting(0.5, "Overlap above which two boxes are one object.")
    class_agnostic: bool = _setting(False, "Merge boxes of different classes too.")
    temporal: str = _setting(
        "off",
        "Over time: fill an object missed for a few frames between two sightings (fill), drop a "
        "one-frame box below 0.4 confidence (clean), or both. Filled boxes are reviewed first.",
        choices=TEMPORAL_MODES,
    )
    fill_gap: int = _setting(2, "Longest gap, in sampled frames, that --temporal fill fills.")
    strict: bool = _setting(
        False, "Fail a video whose header announces more frames than decode, instead of annotating what decodes."
    )
    force: bool = _setting(False, f"Accept more than {MAX_TILES_PER_FRAME} tiles per frame.")
    overwrite_corrections: bool = _setting(
        False,
        "Rewrite label files a person corrected, after copying them to labels.bak-<time>/ "
        "[default: keep them, new automatic boxes go to labels.auto/].",
    )
    learn_static: bool = _setting(
        False,
        "Propose static negatives from your corrections: boxes you deleted that the detector saw "
        "standing still go to static_ignore_suggestions.txt, to confirm into a --static-ignore file.",
    )

    MERGE_OPTIONS = ("merge", "metric", "merge_threshold", "class_agnostic", "temporal", "fill_gap")  # no YOLO
    RUN_OPTIONS = (
        "strict",
        "force",
        "overwrite_corrections",
        "learn_static",
    )  # whether a video runs, not what its labels are

    def __post_init__(self):
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", ModelSpec(**self.model))
        if isinstance(self.classes, str):
            raise VisionError(f"classes must be a list of class names, got the string {self.classes!r}")
        object.__setattr__(self, "classes", tuple(self.classes or ()))
        for name in ("fps", "overlap", "conf", "nms", "merge_threshold", "skip_still"):
            value = getattr(self, name)
            if isinstance(value, numbers.Real) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))

    def validate(self) -> "AnnotateSettings":
        """Raise a one-line VisionError for the first invalid option; return self if all are valid."""
        sampling_settings(self.every, self.fps, self.max_frames, self.jpeg_quality)
        tile_grid(1, 1, self.tile, self.tile_h, self.overlap)
        if min(self.tile, self.tile_h or self.tile) < MIN_TILE:
            raise VisionError(
                f"tile of {min(self.tile, self.tile_h or self.tile)} px is too small for a detector "
                f"(the net's grid is 32 px): give --tile {MIN_TILE} or more"
            )
        self.model.validate()
        for name in ("conf", "nms"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise VisionError(f"{name} threshold must be in [0, 1], got {value!r}")
        if not all(isinstance(c, str) and c for c in self.classes):
            raise VisionError(f"classes must be class names, got {list(self.classes)!r}")
        check_merge_args(self.merge, self.metric, self.merge_threshold)
        check_temporal(self.temporal, self.fill_gap)
        if self.skip_still is not None:
            check_threshold(self.skip_still)
        if self.runtime not in RUNTIMES:
            raise VisionError(f"unknown runtime {self.runtime!r}; choose one of: {', '.join(RUNTIMES)}")
        if self.runtime == "onnxruntime":
            require_onnxruntime()
        if self.full_frame not in (None, True, False):
            raise VisionError(f"full_frame must be true, false or null (auto), got {self.full_frame!r}")
        return self

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["classes"] = list(self.classes)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "AnnotateSettings":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise VisionError(f"unknown settings {unknown}; known: {sorted(known)}")
        if "runtime" not in data:  # settings written before the option existed ran on OpenCV
            data = {**data, "runtime": "opencv"}
        model = data.get("model") or {}
        model_known = {f.name for f in dataclasses.fields(ModelSpec)}
        if set(model) - model_known:
            raise VisionError(
                f"unknown model settings {sorted(set(model) - model_known)}; known: {sorted(model_known)}"
            )
        return cls(**{**data, "model": ModelSpec(**model)})

    def sampling(self) -> dict:
        """Keyword arguments of `extract_frames`."""
        return {"every": self.every, "fps": self.fps, "max_frames": self.max_frames, "jpeg_quality": self.jpeg_quality}

    def detector_spec(self) -> dict:
        """The spec of `get_detector`: model files, input size, thresholds, class filter, runtime."""
        spec = {k: v for k, v in dataclasses.asdict(self.model).items() if v is not None}
        spec.update(conf=self.conf, nms=self.nms, runtime=self.runtime)
        if self.classes:
            spec["classes"] = list(self.classes)
        return spec

    def fingerprint(self, part: str = "all") -> str:
        """Hex sha256 of the canonical JSON of the options that change the labels.

        part: "all"; "detection", the options YOLO's raw per-tile boxes depend on (sampling, tiling,
        the full-frame pass, model, thresholds, classes, runtime); or "merge", the MERGE_OPTIONS, which only
        re-merge those boxes. Model files are identified by path; replacing a model file in place
        needs a new path.
        """
        data = {k: v for k, v in self.to_json().items() if k not in self.RUN_OPTIONS}
        data["merge_rule"] = RULE_VERSION
        data["tile_lattice"] = STRIDE  # tiles on the net's stride lattice: older raw boxes came from other tiles
        data["coarse_level"] = COARSE_LEVEL  # the coarse views' tiles: older raw boxes lack them
        data["content_scale"] = CONTENT_SCALE_RULE  # tiles sized by the video's content scale, found by this rule
        if data["skip_still"] is None:  # off, as before the option: older fingerprints still match
            del data["skip_still"]
        if data["runtime"] == "opencv":  # the one runtime before the option: older fingerprints still match
            del data["runtime"]
        if part != "all":
            data = {k: v for k, v in data.items() if (k in (*self.MERGE_OPTIONS, "merge_rule")) == (part == "merge")}
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def check_tile_count(self, tiles: int, width: int, height: int) -> None:
        """VisionError for more than MAX_TILES_PER_FRAME tiles per frame, unless `force`."""
        if tiles > MAX_TILES_PER_FRAME and not self.force:
            raise VisionError(
                f"--tile {self.tile} cuts a {width}x{height} frame into {tiles} tiles (more than "
                f"{MAX_TILES_PER_FRAME}): give a larger --tile, or --force if you mean it"
            )

    def tile_size(self, scale: float = 1.0, level: int = 1) -> tuple:
        """(width, height) of a tile in frame pixels for a video whose content spans `scale` frame
        pixels a pixel (vision/content_scale.py): the net sees the content at 1:1 again; `level`
        times that for the coarse level (COARSE_LEVEL, the net sees the content at 1:level)."""
        return round(self.tile * scale * level), round((self.tile_h or self.tile) * scale * level)

    def tile_align(self, scale: float = 1.0, level: int = 1) -> tuple:
        """(x, y): the frame-pixel lattice tile starts sit on, the net's coarsest stride at this tile
        size (vision/tiling.py says why)."""
        return tuple(stride_align(side, self.model.input_size) for side in self.tile_size(scale, level))

    def runs_full_frame(self, width: int, height: int, scale: float = 1.0) -> bool:
        """Whether frames of this size get the coarse views (the coarse level's tiles and the
        full-frame pass): as set, or (auto) whenever a frame is larger than one tile."""
        if self.full_frame is not None:
            return bool(self.full_frame)
        tile_w, tile_h = self.tile_size(scale)
        return width > tile_w or height > tile_h
