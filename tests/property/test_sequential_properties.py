"""Properties of the tests over the run of windows (`sequential.py`): the likelihood ratios
equal the log-ratio of the pmfs computed apart, and a CUSUM run stays in [0, cap] with
figures that describe it."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from stream_processors.friction.core.sequential import Run, binomial_llr, poisson_llr

shares = st.floats(min_value=0.01, max_value=0.99)


@given(st.integers(0, 60), st.integers(0, 60), shares, shares)
def test_binomial_llr_is_the_log_ratio_of_the_pmfs(
    k: int, extra: int, p0: float, p1: float
) -> None:
    n = k + extra
    reference = math.log(
        (math.comb(n, k) * p1**k * (1 - p1) ** (n - k))
        / (math.comb(n, k) * p0**k * (1 - p0) ** (n - k))
    )
    assert math.isclose(binomial_llr(k, n, p0, p1), reference, rel_tol=1e-9, abs_tol=1e-9)


@given(st.integers(0, 80), st.floats(0.05, 60.0), st.floats(0.05, 5.0))
def test_poisson_llr_is_the_log_ratio_of_the_pmfs(k: int, mean: float, ratio: float) -> None:
    def log_pmf(m: float) -> float:
        return k * math.log(m) - m - math.lgamma(k + 1)

    reference = log_pmf(mean * ratio) - log_pmf(mean)
    assert math.isclose(poisson_llr(k, mean, ratio), reference, rel_tol=1e-9, abs_tol=1e-9)


@given(st.lists(st.tuples(st.floats(-30.0, 30.0), st.integers(0, 20)), max_size=60))
def test_a_run_stays_between_zero_and_its_cap(steps: list[tuple[float, int]]) -> None:
    run, cap = Run(), 20.0
    for i, (llr, observed) in enumerate(steps):
        run.update(llr, i * 300_000, observed=observed, expected=1.0, trials=observed, cap=cap)
        assert 0.0 <= run.value <= cap
        assert (run.since_ms is None) == (run.windows == 0)
        if run.windows:
            assert run.since_ms == (i - run.windows + 1) * 300_000
