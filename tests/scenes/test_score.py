from __future__ import annotations

from dataclasses import dataclass

import pytest

from edgerun.scenes.score import Score, Truth, match


@dataclass(frozen=True)
class Det:
    class_id: int
    score: float
    center: tuple[float, float]


TRUTH = [Truth(3, (100.0, 100.0), 28.0), Truth(7, (200.0, 100.0), 36.0)]


@pytest.mark.parametrize(
    ("detections", "expected"),
    [
        ([Det(3, 0.99, (110, 105)), Det(7, 0.99, (215, 100))], (2, 0, 0)),  # within half the side
        ([Det(3, 0.99, (100, 115))], (0, 1, 2)),  # 15 px off a 28-px digit: outside 14
        ([Det(7, 0.99, (217, 100))], (1, 0, 1)),  # 17 px off a 36-px digit: inside 18
        ([Det(5, 0.99, (100, 100))], (0, 1, 2)),  # right place, wrong digit
        ([Det(3, 0.99, (100, 100)), Det(3, 0.98, (102, 100))], (1, 1, 1)),  # each truth once
        ([], (0, 0, 2)),
    ],
)
def test_match(detections, expected):
    result = match(detections, TRUTH)
    assert (result.true_positives, result.false_positives, result.false_negatives) == expected


def test_the_stronger_detection_takes_the_truth():
    weak, strong = Det(3, 0.5, (100, 100)), Det(3, 0.9, (112, 100))
    assert match([weak, strong], TRUTH[:1]).to_dict()["hits"] == 1
    assert match([weak, strong], TRUTH[:1]).false_positives == 1


def test_precision_and_recall():
    total = Score().add(Score(8, 2, 0)).add(Score(1, 0, 1))
    assert total.precision == pytest.approx(9 / 11) and total.recall == pytest.approx(9 / 10)
    assert Score().precision == 1.0 and Score().recall == 1.0  # nothing found in an empty picture
