"""Files on disk: written atomically, and known by the sha256 of their bytes.

A task that dies half-way never leaves a half-written file: every file `vision/` writes goes to a
unique temporary name in the same directory and is then renamed over the target (`os.replace` is
atomic on one filesystem), so a task that runs twice, or two tasks racing on the same file, leave
one complete file behind. `file_sha256` names a file by its content: a video, a label file, the
converter's inputs.
"""

import hashlib
import os
import tempfile
from pathlib import Path


def write_bytes_atomic(path, data: bytes) -> Path:
    """Write `data` to `path` via a temporary file and a rename; create parent dirs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def write_text_atomic(path, text: str) -> Path:
    """Write UTF-8 `text` atomically; newlines are written as given ('\\n', never '\\r\\n')."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_if_changed(path, data: bytes) -> bool:
    """Write atomically only when the content differs; True if the file was (re)written.

    Keeps re-runs byte- and mtime-stable, which is what makes a second pass a no-op.
    """
    path = Path(path)
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    write_bytes_atomic(path, data)
    return True


def file_sha256(path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
