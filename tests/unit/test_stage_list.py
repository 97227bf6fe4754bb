"""Which stages a shortened stage list keeps, and how it counts the ones it leaves out."""

from __future__ import annotations

from bot.cards import Status, Step
from bot.stage_list import Gap, current_index, keep_order, shortened

S, R, F, Q, W, P, K = (
    Status.SUCCEEDED,
    Status.RUNNING,
    Status.FAILED,
    Status.QUEUED,
    Status.WAITING,
    Status.PARTIAL,
    Status.SKIPPED,
)


def steps(*statuses: Status) -> list[Step]:
    return [Step(f"s{i}", status) for i, status in enumerate(statuses)]


def test_the_current_stage_is_the_last_the_run_reached() -> None:
    assert current_index(steps(S, S, R, Q, Q)) == 2
    assert current_index(steps(S, F, K, K)) == 1
    assert current_index(steps(Q, Q)) == 0
    assert current_index([]) is None


def test_the_current_stage_then_those_needing_attention_then_the_nearest_are_kept_first() -> None:
    listed = steps(S, W, S, S, P, S, R, S, F, Q, Q)
    order = keep_order(listed)
    assert order[:4] == [8, 6, 4, 1]  # failed (current), running, partial, waiting: nearest the current first
    assert order[4:] == [7, 9, 10, 5, 3, 2, 0]
    assert sorted(order) == list(range(len(listed)))


def test_stages_left_out_are_counted_in_their_place_with_how_they_stand() -> None:
    listed = steps(S, S, S, R, S, Q, Q, K)
    shown = shortened(listed, {3, 4})
    assert shown == [Gap(tuple(listed[:3])), listed[3], listed[4], Gap(tuple(listed[5:]))]
    assert shown[0].describe() == "3 more stages, all succeeded"  # type: ignore[union-attr]
    assert shown[-1].describe() == "3 more stages: 2 queued, 1 skipped"  # type: ignore[union-attr]
    assert Gap((listed[0],)).describe() == "1 more stage, succeeded"
    assert shortened(listed, set(range(8))) == listed
