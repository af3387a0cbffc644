from __future__ import annotations

import json

import numpy as np
import pytest

from edgerun.runtime.postprocess import LocalizeConfig, heatmap_images, localize, top_k
from edgerun.runtime.results import Detection, Result, TopClass

CLASSES = tuple(str(d) for d in range(10))


def test_top_k_orders_by_probability():
    probs = np.array([0.1, 0.6, 0.05, 0.25] + [0] * 6)
    top = top_k(probs, CLASSES, 3)
    assert [t.class_id for t in top] == [1, 3, 0] and top[0].label == "1"


def test_a_cluster_is_a_digit_and_a_speck_is_not():
    heat = np.zeros((40, 50, 10), np.float32)
    heat[..., 0] = 0.5
    heat[10:14, 20:24, 7] = 0.995  # a real digit: 16 neighbouring positions
    heat[30, 5, 2] = 0.99  # a spurious response: one position
    dets = localize(heat, CLASSES, LocalizeConfig())
    assert len(dets) == 1
    det = dets[0]
    assert det.label == "7" and det.area == 16
    cx, cy = det.center
    assert abs(cx - (21.5 * 2 + 14)) < 1e-6 and abs(cy - (11.5 * 2 + 14)) < 1e-6
    assert det.box[2] - det.box[0] == 28


def test_overlapping_classes_keep_the_larger_region():
    heat = np.zeros((20, 20, 10), np.float32)
    heat[5:10, 5:10, 3] = 0.99
    heat[6:8, 6:8, 8] = 0.999
    dets = localize(heat, CLASSES)
    assert [d.label for d in dets] == ["3"]


def test_heatmaps_align_with_the_input():
    heat = np.zeros((141, 155, 10), np.float32)
    heat[0, 0, 4] = 1.0
    maps = heatmap_images(heat, (308, 336), stride=2)
    assert len(maps) == 10 and maps[4].shape == (308, 336)
    ys, xs = np.nonzero(maps[4])
    assert (ys.min(), xs.min()) == (13, 13)  # the book's offset for this size


def test_records_follow_the_documented_schema():
    cls = Result("a.png", 0, 1.23456, top=[TopClass(7, "7", 0.9)]).to_dict()
    assert cls == {
        "source": "a.png",
        "index": 0,
        "top": [{"class_id": 7, "label": "7", "prob": 0.9}],
        "latency_ms": 1.235,
    }
    loc = Result("s.png", 1, 2.0, detections=[Detection(3, "3", 0.99, (1, 2, 29, 30))]).to_dict()
    assert loc["detections"] == [{"class_id": 3, "label": "3", "score": 0.99, "box": [1, 2, 29, 30]}]
    err = Result("x.png", 2, error="boom").to_dict()
    assert err == {"source": "x.png", "index": 2, "error": "boom"}
    json.dumps([cls, loc, err])


def test_result_front_door_properties_and_plot():
    image = np.zeros((28, 28), np.uint8)
    result = Result("a.png", 0, 1.0, top=[TopClass(7, "7", 0.9), TopClass(1, "1", 0.1)], image=image)
    assert (result.label, result.class_id, result.score, result.ok) == ("7", 7, 0.9, True)
    drawn = result.plot(zoom=4)
    assert drawn.shape == (112, 112, 3) and drawn.any()  # the caption was drawn on a black frame
    failed = Result("b.png", 1, error="boom")
    assert failed.label is None and failed.score is None and not failed.ok
    with pytest.raises(ValueError, match="no image to draw on"):
        failed.plot()


def test_records_are_always_valid_json():
    record = Result("a.png", 0, 1.0, top=[TopClass(0, "0", float("nan"))]).to_dict()
    assert record["top"][0]["prob"] is None
    json.dumps(record, allow_nan=False)
