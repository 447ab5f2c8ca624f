"""A person's corrections are data: which label files cvfleet may rewrite, and which it must keep.

cvfleet records the sha256 of every label file it writes (`label_sha256` in annotation.json). On
any later run a label file is cvfleet's own when its bytes are one of the contents cvfleet wrote
or is about to write for that frame:

    the hash recorded by the last complete run,
    the new automatic boxes alone (a label step that died before the static boxes went in),
    the new automatic boxes with the static boxes (a redelivered label step).

Anything else, including a file with no record at all (a dataset from an older cvfleet, or a
label file a person dropped in), is a person's, and is never rewritten:

    - the static boxes are still added to it, idempotently (`add_static_rows`);
    - the boxes cvfleet would have written go to `labels.auto/NAME.txt`, for comparison;
    - its hash is not recorded, so it stays a person's on every later run.

`overwrite=True` (`--overwrite-corrections`) rewrites them after copying each to
`labels.bak-<UTC time>/NAME.txt`. A label file of a frame that is no longer sampled is deleted
when it is cvfleet's and moved to `labels.orphaned/` when it is a person's.

Every person's file is read (and a broken line reported with file and line) before anything is
written, so a bad correction fails the run and changes nothing.

A streamed run writes some label files early, as soon as a frame's tiles are detected (before
annotation.json exists): `write_early` writes a frame only where `settle_labels` would (no file, or
one cvfleet wrote), and records each hash in `.labels-written/`, so a file written early is still
cvfleet's if the run stops before annotation.json: `recorded_hashes` counts both.
"""

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from .datasets import RECORD_NAME
from .files import file_sha256, write_bytes_atomic, write_bytes_if_changed, write_text_atomic
from .labels import format_labels, read_yolo_labels
from .static import add_static_rows, frame_label_files

AUTO_DIR = "labels.auto"
ORPHANED_DIR = "labels.orphaned"
BACKUP_PREFIX = "labels.bak-"
EARLY_DIR = ".labels-written"  # hashes of label files written before annotation.json (streamed runs)


def content_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def label_sha256(path) -> str | None:
    """The label file's sha256, or None when there is no such file."""
    try:
        return file_sha256(path)
    except FileNotFoundError:
        return None


def _read_hashes(path) -> dict:
    try:
        hashes = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return hashes if isinstance(hashes, dict) else {}


def recorded_hashes(record_path) -> dict:
    """{frame name: {sha256, ...}}: the hashes of the label files cvfleet wrote, as the last complete
    run recorded them (annotation.json `label_sha256`) and as a streamed run since wrote them early
    (`.labels-written/` beside it); {} if none."""
    record_path = Path(record_path)
    recorded = _read_hashes(record_path).get("label_sha256")
    owned = {n: {h} for n, h in recorded.items()} if isinstance(recorded, dict) else {}
    early = record_path.parent / EARLY_DIR
    for path in sorted(early.glob("*.json")) if early.is_dir() else []:
        for name, sha in _read_hashes(path).items():
            owned.setdefault(name, set()).add(sha)
    return owned


def _owned(recorded: dict, name: str) -> set:
    """The hashes recorded for `name`: a set, or one hash (as `Settled.written` holds them)."""
    value = recorded.get(name)
    return {value} if isinstance(value, str) else set(value or ())


def corrected_frames(labels_dir, recorded: dict) -> list:
    """Names of the label files in `labels_dir` that differ from what cvfleet wrote."""
    return [p.stem for p in frame_label_files(labels_dir) if label_sha256(p) not in _owned(recorded, p.stem)]


def label_bytes(rows, static_rows=()) -> bytes:
    """A label file's bytes: the automatic rows plus the static rows (each once)."""
    return format_labels(add_static_rows(rows, list(static_rows or ()))).encode("ascii")


def write_early(video_dir, labels_dir, auto_rows: dict, static_rows=(), recorded=None) -> list:
    """Write the label files of frames detected so far, where `settle_labels` would write them (no
    file yet, or one cvfleet wrote: a person's file is left for the final settle), and record their
    hashes in `.labels-written/`; returns the names written. auto_rows: {frame name: [LabelRow]}."""
    video_dir, labels_dir = Path(video_dir), Path(labels_dir)
    labels_dir.mkdir(parents=True, exist_ok=True)
    recorded = recorded if recorded is not None else recorded_hashes(video_dir / RECORD_NAME)
    ours = {}
    for name, rows in auto_rows.items():
        data = label_bytes(rows, static_rows)
        current = label_sha256(labels_dir / f"{name}.txt")
        if current is None or current in _owned(recorded, name) or current == content_sha256(data):
            ours[name] = data
    if ours:  # the record first: a file on disk whose hash is nowhere would count as a person's
        hashes = {name: content_sha256(data) for name, data in ours.items()}
        write_text_atomic(video_dir / EARLY_DIR / f"{min(hashes)}.json", json.dumps(hashes, sort_keys=True) + "\n")
        for name, data in ours.items():
            write_bytes_if_changed(labels_dir / f"{name}.txt", data)
    return sorted(ours)


def forget_early(video_dir) -> None:
    """Drop `.labels-written/` once annotation.json records every label file."""
    shutil.rmtree(Path(video_dir) / EARLY_DIR, ignore_errors=True)


@dataclass
class Settled:
    """What `settle_labels` did: hashes of the files it wrote, frames it kept, where backups went."""

    written: dict = field(default_factory=dict)  # frame name -> sha256 of the bytes cvfleet wrote
    kept: list = field(default_factory=list)  # frames a person corrected, left as they are
    overwritten: list = field(default_factory=list)  # corrected frames rewritten (overwrite=True)
    orphaned: list = field(default_factory=list)  # corrected frames no longer sampled, moved aside
    backup: Path | None = None


def settle_labels(video_dir, labels_dir, auto_rows: dict, static_rows=(), recorded=None, overwrite=False) -> Settled:
    """Write each frame's label file (its automatic rows plus the static rows) unless a person
    corrected it; see the module docstring. auto_rows: {frame name: [LabelRow]} for every frame
    of the video, in frame order. recorded: `recorded_hashes` of the previous run."""
    video_dir, labels_dir = Path(video_dir), Path(labels_dir)
    labels_dir.mkdir(parents=True, exist_ok=True)
    recorded = recorded or {}
    static_rows = list(static_rows or ())
    wanted, theirs = {}, {}
    for name, rows in auto_rows.items():
        auto = label_bytes(rows)
        full = label_bytes(rows, static_rows)
        wanted[name] = full
        current = label_sha256(labels_dir / f"{name}.txt")
        if current is not None and current not in _owned(recorded, name) | {content_sha256(auto), content_sha256(full)}:
            theirs[name] = read_yolo_labels(labels_dir / f"{name}.txt")  # a broken line fails here, first
    stale = [p for p in frame_label_files(labels_dir) if p.stem not in auto_rows]
    stale_theirs = [p for p in stale if label_sha256(p) not in _owned(recorded, p.stem)]
    for p in stale_theirs:
        read_yolo_labels(p)

    done = Settled()
    if overwrite and theirs:
        done.backup = video_dir / f"{BACKUP_PREFIX}{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
        done.backup.mkdir(parents=True, exist_ok=True)
        for name in theirs:
            shutil.copy2(labels_dir / f"{name}.txt", done.backup / f"{name}.txt")
        done.overwritten = list(theirs)
        theirs = {}
    auto_dir = video_dir / AUTO_DIR
    for name, data in wanted.items():
        if name in theirs:
            write_bytes_atomic(auto_dir / f"{name}.txt", data)
            write_bytes_if_changed(labels_dir / f"{name}.txt", label_bytes(theirs[name], static_rows))
            done.kept.append(name)
        else:
            write_bytes_if_changed(labels_dir / f"{name}.txt", data)
            (auto_dir / f"{name}.txt").unlink(missing_ok=True)
            done.written[name] = content_sha256(data)
    for p in stale:
        if p in stale_theirs:
            (video_dir / ORPHANED_DIR).mkdir(exist_ok=True)
            p.replace(video_dir / ORPHANED_DIR / p.name)
            done.orphaned.append(p.stem)
        else:
            p.unlink()
        (auto_dir / p.name).unlink(missing_ok=True)
    if auto_dir.is_dir() and not any(auto_dir.iterdir()):
        auto_dir.rmdir()
    return done
