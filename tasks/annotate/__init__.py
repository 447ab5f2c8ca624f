"""Video annotation as Celery tasks over the `vision.pipeline` steps, driven by the batch record.

Per video:  prepare (queue video: reuse what is on disk, or cut the video into extraction segments)
              └─ extract(segment) × S  (queue video: decode and write frames; as they land, their
                   │                    tiles are planned into detect chunks and queued at once)
                   └─ detect(chunk) × N  (queue detect: YOLO on tiles; boxes kept on disk, progress in
                        │                 Redis; the labels of frames whose tiles are all done are
                        │                 written right away, in any order of completion)
                        └─ label         (queue video: merge every frame, detections.jsonl, labels,
                                          statics, corrections, review, record)

The package, one job a module:
  client    submit, cancel, retry (what the CLI calls)
  steps     the Celery task bodies, each a declared transition of the video (`tasks.batch_records`)
  planner   extraction segments, and frames turned into detect chunks as they land
  dispatch  sending messages by task name; `feed` keeps one chunk per worker process in flight
  context   what a task reads once per process (the batch's submission, settings, model speed)

Streaming: a label file appears seconds after submission. The last segment to finish checks that
every seek was exact (the frame after a segment is the next segment's first) and writes video.json
as one pass would, or starts the video again in one pass. With --temporal or --skip-still no label
is written before the label step (a frame's labels then depend on other frames).

No chord: a chord's callback never runs once one header result is lost (a Redis outage stored a
finished chunk as failed, and the batch hung "detecting" forever). Instead every chunk keeps its
boxes on disk (`vision.tile_cache`) before it reports to the batch record, and the chunk that
completes the record's count sends `label`, which reads the boxes back from disk. What a lost
message, an outage or a dead worker leaves undone, the watchdog (`tasks.watchdog`) sends again.

`prepare` ends the video itself when nothing needs YOLO: the same run is already on disk, or only
static boxes or merge options changed (labels written again from detections.jsonl). A video whose
header announces more frames than decode is annotated as far as it decodes, done with a warning
(unless --strict). Messages carry a batch id, paths, frame names and tile coordinates, never pixels.
"""

from tasks.annotate.client import cancel, retry, submit

__all__ = ["cancel", "retry", "submit"]
