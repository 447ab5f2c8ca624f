"""vision/ is a library a notebook can use: NumPy, SciPy (assignment for matching), OpenCV and the standard
library only; onnx and onnxruntime (one of the two YOLO runtimes) only inside the functions that need them."""

import subprocess
import sys
from pathlib import Path

from support.imports import imported_top_level_names

VISION = Path(__file__).resolve().parent.parent / "vision"
ALLOWED = {"numpy", "scipy", "cv2"} | set(sys.stdlib_module_names)
LAZY = {"onnx", "onnxruntime"}  # imported when the onnxruntime runtime is used: `--runtime opencv` runs without them


def test_vision_modules_import_only_numpy_scipy_opencv_and_the_stdlib():
    offenders = {p.name: sorted(imported_top_level_names(p) - ALLOWED - LAZY) for p in sorted(VISION.glob("*.py"))}
    assert {name: bad for name, bad in offenders.items() if bad} == {}


def test_onnx_is_imported_only_inside_functions():
    at_top = {p.name: sorted(imported_top_level_names(p, True) & LAZY) for p in sorted(VISION.glob("*.py"))}
    assert {name: bad for name, bad in at_top.items() if bad} == {}


def test_importing_every_vision_module_loads_no_celery_redis_or_onnx():
    modules = ", ".join(f"vision.{p.stem}" for p in sorted(VISION.glob("*.py")) if p.stem != "__init__")
    code = (
        f"import sys, {modules}\n"
        "banned = ('celery', 'redis', 'kombu', 'onnx', 'onnxruntime')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in banned))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=VISION.parent, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
