"""The twin metrics source's rate(): one pass over a counter's samples, checked against
Prometheus' definition applied window by window."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from tools.metrics import counter_rates

Point = tuple[float, float]


def rate_by_definition(points: list[Point], start: float, end: float) -> float | None:
    """rate() over (start, end]: the increase between the first and last sample inside the
    window (a drop is a reset, counting from zero), extrapolated to the window, per second."""
    inside = [(t, v) for t, v in points if start - 1e-6 <= t <= end + 1e-6]
    if len(inside) < 2:
        return None
    total = 0.0
    for (_t0, prev), (_t1, v) in itertools.pairwise(inside):
        total += v - prev if v >= prev else v
    span = inside[-1][0] - inside[0][0]
    return total * (end - start) / span / (end - start) if span > 0 else None


def test_a_steady_counter_has_its_slope_as_rate() -> None:
    points = [(15.0 * i, 3.0 * 15 * i) for i in range(20)]
    rates = counter_rates(points, [60.0, 120.0, 285.0], 60.0)
    assert rates == pytest.approx([3.0, 3.0, 3.0])


def test_a_reset_counts_from_zero_and_sparse_windows_have_no_rate() -> None:
    points = [(0.0, 10.0), (15.0, 40.0), (30.0, 5.0), (45.0, 35.0), (200.0, 50.0)]
    # 30 + 5 (the reset) + 30 over 45 s, extrapolated to 60 s.
    first, *_ = counter_rates(points, [45.0], 60.0)
    assert first == pytest.approx(65.0 * 60 / 45 / 60)
    # Only one sample (at 200) in (140, 200]; none at all before the first.
    assert counter_rates(points, [200.0, -10.0], 60.0) == [None, None]
    assert counter_rates([], [0.0, 10.0], 60.0) == [None, None]


@pytest.mark.parametrize("seed", range(5))
def test_every_window_matches_the_definition(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(60):
        t, v, points = 0.0, 0.0, []
        for _i in range(rng.randint(0, 40)):
            t += rng.choice([15.0, 15.0, 30.0, 7.5])
            v = v + rng.random() * 10 if rng.random() > 0.1 else rng.random()
            points.append((t, v))
        steps = sorted(rng.uniform(-30, t + 30) for _ in range(25))
        rate_seconds = rng.choice([30.0, 60.0, 120.0])
        got = counter_rates(points, steps, rate_seconds)
        want = [rate_by_definition(points, s - rate_seconds, s) for s in steps]
        for g, w in zip(got, want, strict=True):
            assert (g is None) == (w is None)
            if g is not None and w is not None:
                assert math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-9)
