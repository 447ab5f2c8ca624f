"""The annotation job's state as types: a video's run, its record, its batch, and the declared
transitions between its states. Parsed once from Redis (`tasks.batch_store`), read everywhere else.

A video moves (each arrow a named transition in `TRANSITIONS`)

    queued --extract--> extracting --detect--> detecting --label--> labelling --finish--> done
                        extracting --relabel--> labelling      (everything reused from disk)
    any state not ended --fail--> failed,  --cancel--> cancelled
    failed | cancelled --retry--> queued (run n + 1);  detecting --restart--> queued (run n + 1,
    extracted again in one pass: a seek was not exact)

Done, failed and cancelled are final for a run: a task of an older run, or of a video that ended,
changes nothing. Every transition is one Lua script in `tasks.batch_store`, given as arguments the
states it may start from (`TRANSITIONS`) and the fields and keys it clears (`PLAN_FIELDS`,
`RUN_FIELDS`, `RUN_KEYS`, `dropped_on`), so Python holds the rules and Lua applies them atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from enum import StrEnum


class VideoState(StrEnum):
    QUEUED = "queued"
    EXTRACTING = "extracting"
    DETECTING = "detecting"
    LABELLING = "labelling"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({VideoState.DONE, VideoState.FAILED, VideoState.CANCELLED})
ACTIVE = frozenset(VideoState) - TERMINAL

# transition -> (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[frozenset, VideoState]] = {
    "extract": (frozenset({VideoState.QUEUED, VideoState.EXTRACTING}), VideoState.EXTRACTING),
    "detect": (frozenset({VideoState.EXTRACTING}), VideoState.DETECTING),
    "label": (frozenset({VideoState.DETECTING, VideoState.LABELLING}), VideoState.LABELLING),
    "relabel": (frozenset({VideoState.EXTRACTING}), VideoState.LABELLING),  # everything reused from disk
    "finish": (ACTIVE, VideoState.DONE),
    "fail": (ACTIVE, VideoState.FAILED),
    "cancel": (ACTIVE, VideoState.CANCELLED),
    "retry": (frozenset({VideoState.FAILED, VideoState.CANCELLED}), VideoState.QUEUED),
    "restart": (frozenset({VideoState.DETECTING}), VideoState.QUEUED),
}

# Fields of one detection plan: cleared whenever a plan starts (whole or streaming) or a run restarts.
PLAN_FIELDS = ("chunks", "label_sent", "label_sends", "prefix", "labelled", "streaming", "planned", "tiles_reused")
# Fields of one run: cleared, with the plan's, when a retry starts the next run.
RUN_FIELDS = (*PLAN_FIELDS, "error", "finished", "task_id", "label_task_id", "prepare_sends", "extract_sends")
# A video's keys of one run (`cvfleet:batch:<id>:video:<i>:<name>`): dropped when the run restarts.
RUN_KEYS = ("plan", "chunks", "segments", "boxes")


def dropped_on(state: VideoState) -> tuple[str, ...]:
    """The run's keys dropped when the video reaches `state`: a run that ends needs its plan,
    segments and boxes waiting in Redis no more; a video done needs no chunk counts either (every
    tile is done), while a failed or cancelled one keeps them for its progress line until a retry."""
    if state is VideoState.DONE:
        return RUN_KEYS
    return ("plan", "segments", "boxes") if state in TERMINAL else ()


def lua_list(states) -> str:
    """States as the comma list the Lua scripts take (`member(list, state)` in batch_store's prelude)."""
    return ",".join(sorted(str(s) for s in states))


@dataclass(frozen=True)
class VideoRun:
    """One run of one video of a batch: every task message and transition names all three, so a
    message left from before a retry (an older run) is recognised and ignored."""

    batch: str
    index: int
    run: int

    def chunk(self, number: int) -> ChunkRef:
        return ChunkRef(self, number)

    def next(self) -> VideoRun:
        return VideoRun(self.batch, self.index, self.run + 1)

    def __str__(self) -> str:
        return f"batch {self.batch} video {self.index} (run {self.run})"


@dataclass(frozen=True)
class ChunkRef:
    """A detect chunk of a video run; `name` is how the pending list and the in-flight set hold it."""

    video: VideoRun
    number: int

    @property
    def name(self) -> str:
        return f"{self.video.index}:{self.number}:{self.video.run}"

    @classmethod
    def parse(cls, batch: str, name: str) -> ChunkRef:
        index, number, run = (int(x) for x in name.split(":"))
        return cls(VideoRun(batch, index, run), number)


def _int(text) -> int:
    return int(text or 0)


def _float(text) -> float | None:
    return float(text) if text else None


def _json(text):
    return json.loads(text) if text else None


@dataclass
class VideoRecord:
    """A video's hash (`cvfleet:batch:<id>:video:<i>`), parsed. Counts are 0 and optional values None
    when the field is not written yet. `tiles_done` is derived by `batch_store.progress`."""

    batch: str
    index: int
    video: str
    video_dir: str
    state: VideoState
    run: int = 1
    updated: float | None = None
    finished: float | None = None
    frames: int = 0
    tiles: int = 0
    tiles_reused: int = 0
    tiles_done: int = 0
    width: int = 0
    height: int = 0
    chunks: int | None = None  # the plan's size once it is final
    planned: int = 0  # chunks planned so far (streaming)
    prefix: int = 0  # chunks 0..prefix-1 all done
    streaming: int | None = None  # segments extracting while the plan is open
    cache: str = ""
    ms_per_tile: float | None = None
    info: dict | None = None  # the video's header and content scale (streaming)
    bounds: list | None = None  # the extraction segments' source frame bounds
    task_id: str = ""
    label_task_id: str = ""
    label_sent: float | None = None
    label_sends: int = 0
    prepare_sends: int = 0
    extract_sends: int = 0
    single_pass: bool = False
    error: str = ""
    warning: str = ""
    summary: dict | None = None
    updated_by: str = ""

    @classmethod
    def parse(cls, batch: str, h: dict) -> VideoRecord:
        return cls(
            batch=batch,
            index=int(h["index"]),
            video=h["video"],
            video_dir=h["video_dir"],
            state=VideoState(h["state"]),
            run=int(h.get("run") or 1),
            updated=_float(h.get("updated")),
            finished=_float(h.get("finished")),
            frames=_int(h.get("frames")),
            tiles=_int(h.get("tiles")),
            tiles_reused=_int(h.get("tiles_reused")),
            width=_int(h.get("width")),
            height=_int(h.get("height")),
            chunks=int(h["chunks"]) if h.get("chunks") else None,
            planned=_int(h.get("planned")),
            prefix=_int(h.get("prefix")),
            streaming=int(h["streaming"]) if h.get("streaming") else None,
            cache=h.get("cache", ""),
            ms_per_tile=_float(h.get("ms_per_tile")),
            info=_json(h.get("info")),
            bounds=_json(h.get("bounds")),
            task_id=h.get("task_id", ""),
            label_task_id=h.get("label_task_id", ""),
            label_sent=_float(h.get("label_sent")),
            label_sends=_int(h.get("label_sends")),
            prepare_sends=_int(h.get("prepare_sends")),
            extract_sends=_int(h.get("extract_sends")),
            single_pass=bool(_int(h.get("single_pass"))),
            error=h.get("error", ""),
            warning=h.get("warning", ""),
            summary=_json(h.get("summary")),
            updated_by=h.get("updated_by", ""),
        )

    @property
    def current(self) -> VideoRun:
        return VideoRun(self.batch, self.index, self.run)

    @property
    def ended(self) -> bool:
        return self.state in TERMINAL

    @property
    def scale(self) -> float:
        """The video's content scale (vision/content_scale.py), 1 until prepare measured it."""
        return (self.info or {}).get("scale", 1.0)


@dataclass
class BatchRecord:
    """A batch's hash (`cvfleet:batch:<id>`), parsed: what was submitted, which never changes, and
    when it was cancelled."""

    id: str
    created: float
    out: str
    settings: dict
    roots: list[str]
    videos: int
    static: str = ""
    static_ignore: str = ""
    preview: bool = False
    tiles_per_task: int | None = None
    cancelled: float | None = None

    @classmethod
    def parse(cls, h: dict) -> BatchRecord:
        return cls(
            id=h["id"],
            created=float(h["created"]),
            out=h["out"],
            settings=json.loads(h["settings"]),
            roots=json.loads(h["roots"]),
            videos=int(h["videos"]),
            static=h.get("static", ""),
            static_ignore=h.get("static_ignore", ""),
            preview=bool(_int(h.get("preview"))),
            tiles_per_task=_int(h.get("tiles_per_task")) or None,
            cancelled=_float(h.get("cancelled")),
        )

    def hash(self) -> dict:
        """The fields as Redis stores them."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "cancelled"}
        out.update(
            settings=json.dumps(self.settings),
            roots=json.dumps(self.roots),
            preview=int(self.preview),
            tiles_per_task=self.tiles_per_task or 0,
        )
        return out


@dataclass
class BatchProgress:
    """A batch and every video's record, read in one round trip (`batch_store.progress`)."""

    batch: BatchRecord
    videos: list[VideoRecord] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return all(v.ended for v in self.videos)

    @property
    def failed(self) -> int:
        return sum(v.state is VideoState.FAILED for v in self.videos)

    @property
    def cancelled_videos(self) -> int:
        return sum(v.state is VideoState.CANCELLED for v in self.videos)
