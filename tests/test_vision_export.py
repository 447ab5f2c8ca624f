"""Export: many annotated videos as one YOLO or COCO dataset, split without leaks, nothing lost."""

import json
import shutil

import pytest
import yaml
from click.testing import CliRunner

from vision.errors import VisionError
from vision.export import export, split_block, split_videos
from vision.labels import LabelRow, format_labels, parse_labels, read_classes
from vision.pipeline import annotate_video
from vision.settings import AnnotateSettings, ModelSpec
from workers.cli import cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def annotated(clip12, model_fields, tmp_path_factory):
    """Three annotated videos (the clip under three names) in one --out folder."""
    root = tmp_path_factory.mktemp("export-src")
    settings = AnnotateSettings(every=2, model=ModelSpec(**model_fields))  # 6 frames each
    for name in ("cam_a", "cam_b", "cam_c"):
        video = root / f"{name}.avi"
        shutil.copyfile(clip12, video)
        annotate_video(video, root / "out", settings)
    return root / "out"


def read_yolo_dataset(out):
    """Our own reader of the Ultralytics layout: {split: {name: label text}} and data.yaml."""
    data = yaml.safe_load((out / "data.yaml").read_text())
    splits = {}
    for side in ("train", "val"):
        images = sorted(p.stem for p in (out / data[side]).iterdir())
        labels = sorted(p.stem for p in (out / "labels" / side).iterdir())
        assert images == labels
        splits[side] = {n: (out / "labels" / side / f"{n}.txt").read_text() for n in labels}
    return data, splits


def test_yolo_export_splits_by_video_with_unique_names_and_the_labels_as_they_are(annotated, tmp_path):
    summary = export([annotated], tmp_path / "ds", "yolo", split=0.7, seed=1)
    data, splits = read_yolo_dataset(tmp_path / "ds")
    assert data["names"] == dict(enumerate(read_classes(annotated / "cam_a" / "classes.txt")))
    assert data["path"] == str(tmp_path / "ds") and data["nc"] == 80
    videos = {side: {n.rsplit("_", 1)[0] for n in names} for side, names in splits.items()}
    assert videos["train"] and videos["val"] and not videos["train"] & videos["val"]  # no video on both sides
    assert sum(len(s) for s in splits.values()) == 18 and summary["split_by"] == "video"
    for names in splits.values():
        for name, text in names.items():
            video, frame = name.rsplit("_", 1)
            assert text == (annotated / video / "labels" / f"{frame}.txt").read_text()
    assert summary["boxes"] == sum(len(parse_labels(t, n)) for s in splits.values() for n, t in s.items())


def test_one_video_is_split_by_one_contiguous_block(annotated, tmp_path):
    summary = export([annotated / "cam_b"], tmp_path / "ds", split=0.5, seed=3)
    _, splits = read_yolo_dataset(tmp_path / "ds")
    val = sorted(int(n.rsplit("_", 1)[1]) for n in splits["val"])
    assert summary["split_by"] == "block" and len(val) == 3 and val == list(range(val[0], val[0] + 3))


@pytest.mark.parametrize("seed", range(6))
def test_split_rules_keep_a_side_for_each_and_blocks_contiguous(seed):
    sides = split_block(50, 0.8, seed)
    assert sides.count("val") == 10
    first = sides.index("val")
    assert sides[first : first + 10] == ["val"] * 10
    videos = {f"v{i}": [None] * n for i, n in enumerate((5, 40, 7, 9))}
    by_video = split_videos(videos, 0.99, seed)
    assert "train" in by_video.values() and "val" in by_video.values()


def test_coco_export_reads_back_with_pycocotools_with_scores_on_the_detectors_boxes(annotated, tmp_path):
    from pycocotools.coco import COCO

    person_drawn = LabelRow(0, 0.5, 0.5, 0.2, 0.4)
    src = tmp_path / "src"
    shutil.copytree(annotated / "cam_a", src / "cam_a")
    label = src / "cam_a" / "labels" / "000001.txt"
    label.write_text(label.read_text() + format_labels([person_drawn]))

    export([src], tmp_path / "coco", "coco", split=0.5, seed=0)
    images = rows = scored = 0
    for side in ("train", "val"):
        coco = COCO(str(tmp_path / "coco" / "annotations" / f"instances_{side}.json"))
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == read_classes(src / "cam_a" / "classes.txt")
        for image in coco.loadImgs(coco.getImgIds()):
            assert (tmp_path / "coco" / "images" / side / image["file_name"]).is_file()
            anns = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
            frame = image["file_name"][len("cam_a_") : -len(".jpg")]
            assert len(anns) == len(parse_labels((src / "cam_a" / "labels" / f"{frame}.txt").read_text(), frame))
            rows += len(anns)
            scored += sum("score" in a for a in anns)
            if frame == "000001":
                drawn = [a for a in anns if "score" not in a]
                assert len(drawn) == 1 and drawn[0]["bbox"] == pytest.approx(
                    [0.4 * 768, 0.3 * 576, 0.2 * 768, 0.4 * 576]
                )
        images += len(coco.getImgIds())
    assert images == 6 and scored == rows - 1


def test_corrected_only_exports_the_frames_a_person_corrected(annotated, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(annotated / "cam_c", src / "cam_c")
    (src / "cam_c" / "labels" / "000004.txt").write_text(format_labels([LabelRow(2, 0.5, 0.5, 0.1, 0.1)]))
    summary = export([src], tmp_path / "ds", corrected_only=True)
    assert summary["frames"] == {"train": 1, "val": 0} and summary["boxes"] == 1


def test_a_second_export_replaces_the_first(annotated, tmp_path):
    export([annotated], tmp_path / "ds", seed=0)
    export([annotated / "cam_a"], tmp_path / "ds", seed=0)
    _, splits = read_yolo_dataset(tmp_path / "ds")
    assert {n.rsplit("_", 1)[0] for s in splits.values() for n in s} == {"cam_a"}


def run(args):
    return CliRunner().invoke(cli, ["export", *map(str, args)])


def test_the_command_prints_what_it_exported_and_the_next_step(annotated, tmp_path):
    result = run([annotated, "--out", tmp_path / "ds", "--split", "0.6"])
    assert result.exit_code == 0, result.output
    assert "exported 18 frames (12 train / 6 val, split by video) from 3 video(s)" in result.output
    assert f"yolo train data={tmp_path / 'ds' / 'data.yaml'}" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--out", "{src}/out/cam_a/export", "--split", "0.8"], "lies inside the source dataset"),
        (["--out", "{tmp}/ds", "--split", "1"], "strictly between 0 and 1"),
        (["--out", "{tmp}/ds", "--split", "0"], "strictly between 0 and 1"),
        (["--out", "{tmp}/busy", "--split", "0.8"], "is not an earlier export"),
    ],
)
def test_bad_export_arguments_give_one_line_and_write_nothing(annotated, tmp_path, args, message):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    args = [a.format(src=annotated.parent, tmp=tmp_path) for a in args]
    result = run([annotated, *args])
    assert result.exit_code != 0 and message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "ds").exists() and not (annotated / "cam_a" / "export").exists()
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_a_broken_label_file_is_reported_with_file_and_line_and_nothing_is_written(annotated, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(annotated / "cam_a", src / "cam_a")
    (src / "cam_a" / "labels" / "000003.txt").write_text("0 0.5 0.5 0.1 0.1\n7 0.5 0.5 x 0.1\n")
    result = run([src, "--out", tmp_path / "ds"])
    assert result.exit_code != 0 and "000003.txt:2: coordinates must be numbers" in result.output
    assert not (tmp_path / "ds").exists()


def test_a_folder_cvfleet_did_not_write_is_refused(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(VisionError, match="is not a cvfleet dataset"):
        export([tmp_path / "photos"], tmp_path / "ds")
    assert json.dumps(sorted(p.name for p in tmp_path.iterdir())) == '["photos"]'
