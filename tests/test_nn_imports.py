"""nn/ is a CNN library a notebook can use: NumPy, SciPy and the standard library only; no Celery,
no Redis, no OpenCV, nothing of vision/, tasks/ or workers/."""

import subprocess
import sys
from pathlib import Path

from support.imports import imported_top_level_names

NN = Path(__file__).resolve().parent.parent / "nn"
ALLOWED = {"numpy", "scipy"} | set(sys.stdlib_module_names)


def test_nn_modules_import_only_numpy_scipy_and_the_stdlib():
    offenders = {p.name: sorted(imported_top_level_names(p) - ALLOWED) for p in sorted(NN.glob("*.py"))}
    assert {name: bad for name, bad in offenders.items() if bad} == {}


def test_importing_every_nn_module_loads_no_celery_redis_opencv_or_project_runtime():
    modules = ", ".join(f"nn.{p.stem}" for p in sorted(NN.glob("*.py")) if p.stem != "__init__")
    code = (
        f"import sys, {modules}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('celery', 'redis', 'kombu', 'cv2', 'vision', 'tasks', 'workers')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=NN.parent, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
