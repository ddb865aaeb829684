"""The priority arithmetic (extender/engine/scoring.py), as documented in the README."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extender.engine.scoring import combine, normalise, normalised_column, round_half_up, score_columns


def test_min_max_normalisation() -> None:
    assert normalise([1.0, 3.0, 2.0]) == [0.0, 10.0, 5.0]


def test_equal_values_all_get_the_top_score_and_missing_values_the_bottom() -> None:
    assert normalise([4.0, 4.0, None]) == [10.0, 10.0, 0.0]
    assert normalise([None, None]) == [0.0, 0.0]
    assert normalise([]) == []


def test_negative_and_fractional_scales_normalise_the_same_way() -> None:
    assert normalise([-0.5, -0.25, 0.0]) == [0.0, 5.0, 10.0]


@pytest.mark.parametrize(("value", "rounded"), [(2.5, 3), (3.5, 4), (2.49, 2), (0.0, 0), (9.5, 10)])
def test_rounding_is_half_up(value: float, rounded: int) -> None:
    assert round_half_up(value) == rounded


def test_weighted_average_of_columns() -> None:
    # node 0: (1*10 + 3*0)/4 = 2.5 -> 3; node 1: (1*0 + 3*10)/4 = 7.5 -> 8
    assert combine([(1.0, [10.0, 0.0]), (3.0, [0.0, 10.0])], 2) == [3, 8]


def test_no_columns_scores_zero() -> None:
    assert combine([], 3) == [0, 0, 0]


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0.01, max_value=100),
            st.lists(st.none() | st.floats(min_value=-1e9, max_value=1e9), min_size=5, max_size=5),
        ),
        max_size=4,
    )
)
def test_combined_scores_are_integers_in_range_and_order_preserving(raw_columns: list[tuple[float, list[float | None]]]) -> None:
    columns = [(w, normalise(col)) for w, col in raw_columns]
    scores = combine(columns, 5)
    assert all(type(s) is int and 0 <= s <= 10 for s in scores)
    if len(columns) == 1:
        column = columns[0][1]
        for i in range(5):
            for j in range(5):
                if column[i] > column[j]:
                    assert scores[i] >= scores[j]


FAILED = object()


def reference(raw_columns: list[list[object]], weights: list[float], errors: list[float]) -> list[int]:
    """The documented arithmetic, step by step: normalise each column, weighted average, round."""
    n = len(raw_columns[0]) if raw_columns else 0
    columns = [(w, normalised_column(c, e, FAILED)) for c, w, e in zip(raw_columns, weights, errors)]
    return combine(columns, n)


raw_value = st.one_of(st.none(), st.just(FAILED), st.floats(min_value=-1e6, max_value=1e6), st.sampled_from([0.0, 1.0, 2.0]))


@given(
    st.integers(1, 8).flatmap(
        lambda n: st.lists(
            st.tuples(
                st.floats(min_value=0.1, max_value=10),
                st.sampled_from([0.0, 5.0]),
                st.lists(raw_value, min_size=n, max_size=n) | st.lists(st.integers(-5, 5).map(float), min_size=n, max_size=n),
            ),
            min_size=1,
            max_size=4,
        )
    )
)
def test_the_one_pass_path_gives_the_documented_scores(columns: list[tuple[float, float, list[object]]]) -> None:
    raw = [c for _, _, c in columns]
    weights = [w for w, _, _ in columns]
    errors = [e for _, e, _ in columns]
    assert score_columns(raw, weights, errors, FAILED, len(raw[0])) == reference(raw, weights, errors)


def test_ties_round_up_on_both_paths() -> None:
    # (1 x 10 + 3 x 0) / 4 = 2.5 -> 3 and 7.5 -> 8, through the one-pass path
    assert score_columns([[1.0, 0.0], [0.0, 1.0]], [1.0, 3.0], [5.0, 5.0], FAILED, 2) == [3, 8]
    assert score_columns([[1.0, None], [0.0, 1.0]], [1.0, 3.0], [5.0, 5.0], FAILED, 2) == [3, 8]
