"""The bundled yolov3-tiny runs with the cfg its COCO weights were trained with."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from workers import asset_cache


@pytest.fixture
def model_cache(tmp_path):
    """A cache holding the verified yolov3-tiny files, as `cvfleet assets fetch` leaves them."""
    source = asset_cache.location("yolov3-tiny")
    asset_cache.ensure("yolov3-tiny")
    target = tmp_path / "assets" / "yolov3-tiny"
    target.mkdir(parents=True)
    for name in ("yolov3-tiny.cfg", "yolov3-tiny.weights", "coco.names", ".verified"):
        shutil.copy(source / name, target / name)
    return tmp_path


def test_ensure_writes_the_cfg_the_weights_were_trained_with(model_cache):
    files = asset_cache.yolov3_tiny_files(model_cache)
    masks = re.findall(r"^mask = (.*)$", Path(files["cfg"]).read_text(), re.M)
    assert masks == ["3,4,5", "1,2,3"]  # the released weights' fine layer: anchors 1,2,3 (pjreddie/darknet#851)
    original = (model_cache / "assets" / "yolov3-tiny" / "yolov3-tiny.cfg").read_text()
    assert re.findall(r"^mask = (.*)$", original, re.M) == ["3,4,5", "0,1,2"]  # the package's, untouched


def test_a_cfg_that_is_not_the_verified_one_is_not_corrected_silently(model_cache):
    cfg = model_cache / "assets" / "yolov3-tiny" / "yolov3-tiny.cfg"
    cfg.write_text(cfg.read_text().replace("classes=80", "classes=81"))
    with pytest.raises(asset_cache.AssetError, match="corrected cfg has sha256"):
        asset_cache.yolov3_tiny_files(model_cache)
