import math

import pytest
from mlflow.entities import Metric

from tracker_flavor.delivery.points import identity, missing_points

pytestmark = pytest.mark.unit


def test_only_the_points_a_history_lacks_are_missing():
    points = [Metric("m", 1.0, 10, 0), Metric("m", 2.0, 20, 1), Metric("m", math.nan, 30, 2)]
    points.append(Metric("other", 1.0, 10, 0))
    assert missing_points(points, []) == points
    present = [Metric("m", 1.0, 10, 0), Metric("m", math.nan, 30, 2)]
    assert missing_points(points, present) == [points[1], points[3]]
    assert missing_points(points, points) == []


def test_a_nan_point_is_the_same_point_twice():
    assert identity(Metric("m", math.nan, 30, 2)) == identity(Metric("m", math.nan, 30, 2))
    assert identity(Metric("m", 1.0, 30, 2)) != identity(Metric("m", 1.0, 30, 3))
