"""What makes a folder a cvfleet dataset, for the commands that read one (review, export).

A video's folder is one `cvfleet annotate` finished: it holds annotation.json (written last).
A dataset directory is such a folder, or a folder of them (the `--out` of a batch).
"""

import json
from pathlib import Path

from .errors import VisionError

RECORD_NAME = "annotation.json"


def video_dirs(path) -> list:
    """The annotated video folders at `path`: itself, or its sub-folders; VisionError if none."""
    path = Path(path)
    if not path.is_dir():
        raise VisionError(f"{path} is not a directory; give a folder `cvfleet annotate` wrote")
    if (path / RECORD_NAME).is_file():
        return [path]
    found = sorted(d for d in path.iterdir() if d.is_dir() and (d / RECORD_NAME).is_file())
    if not found:
        raise VisionError(
            f"{path} is not a cvfleet dataset (no {RECORD_NAME} in it or its sub-folders): "
            "give the --out folder of `cvfleet annotate`, or one video's folder in it"
        )
    return found


def read_run_settings(record_path) -> dict:
    """The settings a video was annotated with (annotation.json; {} from an older cvfleet)."""
    try:
        data = json.loads(Path(record_path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VisionError(
            f"{Path(record_path).parent} is not a cvfleet dataset (no {RECORD_NAME}): "
            "give a folder `cvfleet annotate` wrote"
        ) from None
    except (OSError, ValueError) as e:
        raise VisionError(f"cannot read {record_path}: {e.__class__.__name__}; annotate the video again") from None
    if not isinstance(data, dict) or "record" not in data:
        raise VisionError(f"{record_path} is not an annotation record; annotate the video again")
    return data.get("settings") or {}
