"""The bare baseline the fleet is compared with: one process running `vision.pipeline.annotate_video`
with the runtime's fastest thread count on this machine (intra-op threads on onnxruntime, OpenCV's
threads on cv2.dnn), measured on the clip's own tiles, 1..cores."""

from __future__ import annotations

import os
import time


def first_frame_tiles(video, workdir, settings) -> tuple[dict, list]:
    """`video` extracted into `workdir` with `settings`; (its metadata, the tiles of its first frame)."""
    from vision import pipeline

    meta = pipeline.prepare_video(video, workdir, settings)
    image = pipeline.read_frame(workdir / "images" / "000001.jpg")
    return meta, [image[t.y : t.y + t.h, t.x : t.x + t.w] for t in pipeline.plan_tiles(meta, settings)]


def bare_detector(settings, tiles_of_frame):
    """The settings' detector with the intra-op (onnxruntime) or OpenCV thread count that is fastest
    here on these tiles; (detector, threads, ms per tile by thread count)."""
    import cv2

    from vision.darknet_onnx import cached_onnx
    from vision.detector import Detector
    from vision.onnx_runtime import OnnxRuntimeNet

    spec = settings.detector_spec()
    detector = Detector.from_spec(spec)
    timings = {}
    for n in range(1, (os.cpu_count() or 1) + 1):
        if detector.runtime == "onnxruntime":
            onnx = cached_onnx(spec["cfg"], spec["weights"], detector.input_size)
            detector.session = OnnxRuntimeNet(onnx, "bare loop", threads=n)
        else:
            cv2.setNumThreads(n)
        detector.detect(tiles_of_frame[0])
        t0 = time.perf_counter()
        for _ in range(3):
            for tile in tiles_of_frame:
                detector.detect(tile)
        timings[n] = 1000 * (time.perf_counter() - t0) / (3 * len(tiles_of_frame))
    best = min(timings, key=timings.get)
    if detector.runtime == "onnxruntime":
        detector.session = OnnxRuntimeNet(cached_onnx(spec["cfg"], spec["weights"], detector.input_size), "bare", best)
    else:
        cv2.setNumThreads(best)
    return detector, best, timings


def probe_line(timings: dict) -> str:
    return "bare probe: " + ", ".join(f"{n} thread(s) {ms:.1f} ms/tile" for n, ms in timings.items())


def annotate_bare(video, out_dir, settings, detector) -> dict:
    """`annotate_video` in this process with `detector` (the tuned one) instead of the cached default."""
    from vision import detector as detector_module
    from vision import pipeline

    original = detector_module.get_detector
    detector_module.get_detector = lambda spec: detector  # annotate_video asks for it by spec
    try:
        return pipeline.annotate_video(video, out_dir, settings)
    finally:
        detector_module.get_detector = original
