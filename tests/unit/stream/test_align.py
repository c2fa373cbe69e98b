"""Event-time merge: transactions released in event-time order, never ahead of due labels."""

from __future__ import annotations

from fraudstream.stream.align import EventTimeMerge

HOUR = 3_600_000
A, B, L = ("tx", 0), ("tx", 1), ("labels", 0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _merge(clock: Clock, skew: int = 0, cap: int = 100) -> EventTimeMerge[str]:
    return EventTimeMerge("labels", skew, label_lead_ms=24 * HOUR, idle_after_s=5.0,
                          queue_cap=cap, clock=clock)  # fmt: skip


def _always(_source: tuple[str, int]) -> bool:
    return True


def _never(_source: tuple[str, int]) -> bool:
    return False


def test_queued_partitions_are_released_in_event_time_order() -> None:
    m = _merge(Clock())
    for t in (1, 4, 6):
        m.add(A, t * HOUR, f"a{t}")
    for t in (2, 3, 5):
        m.add(B, t * HOUR, f"b{t}")
    # Both have more on the broker: only up to where the first emptied queue's time allows.
    assert m.release(_always, 100) == ["a1", "b2", "b3", "a4", "b5"]
    assert m.queued() == 1  # a6 waits: B could still deliver something before 6 h
    assert m.release(_never, 100) == ["a6"]  # B caught up: nothing can come before it


def test_a_partition_with_a_backlog_and_nothing_read_holds_everything() -> None:
    m = _merge(Clock())
    m.plan([A, B], _always)  # both assigned
    m.add(A, HOUR, "a1")
    assert m.release(_always, 100) == []  # B's first record could be the earliest
    assert m.release(_never, 100) == ["a1"]


def test_the_skew_lets_a_partition_run_ahead_of_a_holding_one() -> None:
    m = _merge(Clock(), skew=2 * HOUR)
    m.add(B, 0, "b0")
    assert m.release(_always, 100) == ["b0"]  # B emptied, holds from 0 + 2 h
    m.add(A, HOUR, "a1")
    m.add(A, 3 * HOUR, "a3")
    assert m.release(_always, 100) == ["a1"]


def test_transactions_wait_for_labels_due_before_them() -> None:
    m = _merge(Clock())
    m.observe(L, 5 * HOUR)  # labels read up to label time 5 h, more on the broker
    m.add(A, 4 * HOUR, "a4")
    m.add(A, 6 * HOUR, "a6")
    assert m.release(lambda s: s == L, 100) == ["a4"]
    m.observe(L, 7 * HOUR)
    assert m.release(lambda s: s == L, 100) == ["a6"]


def test_caught_up_or_silent_sources_hold_nothing() -> None:
    clock = Clock()
    m = _merge(clock)
    m.observe(L, 0)  # sparse labels, live: far behind, nothing more on the broker
    m.add(A, 100 * HOUR, "a")
    assert m.release(lambda s: s != L, 100) == ["a"]
    m.add(A, 101 * HOUR, "b")
    assert m.release(_always, 100) == []  # L says it has a backlog...
    clock.now = 6.0  # ...but delivered nothing for longer than the idle time
    assert m.release(_always, 100) == ["b"]


def test_records_without_event_time_are_released_at_once_and_hold_nobody() -> None:
    m = _merge(Clock())
    m.add(A, 5 * HOUR, "a5")
    m.add(B, None, "bad")
    assert m.release(_always, 100) == ["bad", "a5"]
    m.add(B, 6 * HOUR, "b6")  # timed from now on: it holds again
    m.add(A, 7 * HOUR, "a7")
    assert m.release(_always, 100) == ["b6"]


def test_limit_per_release() -> None:
    m = _merge(Clock())
    for t in range(10):
        m.add(A, t, str(t))
    assert m.release(_never, 4) == ["0", "1", "2", "3"]
    assert m.queued() == 6


def test_full_queues_and_labels_far_ahead_are_paused_then_resumed() -> None:
    m = _merge(Clock(), cap=4)
    for t in range(4):
        m.add(A, t * HOUR, "a")
    m.observe(L, 30 * HOUR)
    plan = m.plan([A, L], _always)
    assert plan.pause == {A, L}  # A is full; L is 30 h ahead of the earliest transaction read
    m.release(_never, 100)
    m.add(A, 4 * HOUR, "a")  # one still queued, under half the cap
    plan = m.plan([A, L], _always)
    assert plan.resume == {A}  # L stays: 30 h > 3 h released + 24 h lead
    assert m.paused == {L}
    m.release(_never, 100)
    plan = m.plan([A, L], _never)  # the transactions are all read and released
    assert plan.resume == {L}
    assert m.pauses == 2


def test_forget_drops_the_queue_of_a_revoked_partition() -> None:
    m = _merge(Clock())
    m.add(A, 1, "a")
    m.add(A, 2, "a")
    assert m.forget([A, B]) == 2
    assert m.queued() == 0


def test_transactions_may_run_a_minute_ahead_of_labels_still_to_read() -> None:
    m = _merge(Clock())
    m.observe(L, 10 * 60_000)  # label time 10 min, a label just produced not yet fetched
    m.add(A, 10 * 60_000 + 30_000, "a")  # 30 s later: within the minute, no wait
    m.add(A, 12 * 60_000, "b")  # 2 min later: waits for the label
    assert m.release(lambda s: s == L, 100) == ["a"]
