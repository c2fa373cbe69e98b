"""Event-time alignment: which inputs are paused, and that the slowest one never is."""

from __future__ import annotations

from fraudstream.stream.align import Aligner

HOUR = 3_600_000
A, B, L = ("tx", 0), ("tx", 1), ("labels", 0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _aligner(clock: Clock) -> Aligner:
    return Aligner(max_skew_ms=HOUR, idle_after_s=1.0, clock=clock)


def test_a_source_ahead_of_a_backlogged_one_is_paused_and_resumed_when_it_catches_up() -> None:
    clock = Clock()
    al = _aligner(clock)
    al.observe(A, 0)
    al.observe(B, 5 * HOUR)
    plan = al.plan(lambda s: True, [A, B])
    assert plan.pause == {B}
    assert not plan.resume
    assert al.paused == {B}
    assert al.pauses == 1
    # A advances to within the skew of B: B resumes; A is never paused.
    al.observe(A, 4 * HOUR + 1)
    plan = al.plan(lambda s: True, [A, B])
    assert plan.resume == {B}
    assert not plan.pause
    assert not al.paused


def test_within_the_skew_nothing_is_paused() -> None:
    clock = Clock()
    al = _aligner(clock)
    al.observe(A, 0)
    al.observe(B, HOUR)  # exactly the skew: allowed
    assert not al.plan(lambda s: True, [A, B]).pause


def test_a_caught_up_source_holds_back_nothing() -> None:
    clock = Clock()
    al = _aligner(clock)
    al.observe(L, 0)  # labels: far behind but nothing more to read (sparse labels, live)
    al.observe(A, 100 * HOUR)
    assert not al.plan(lambda s: s != L, [A, L]).pause


def test_a_silent_source_stops_holding_after_the_idle_time() -> None:
    clock = Clock()
    al = _aligner(clock)
    al.observe(A, 0)
    al.observe(B, 10 * HOUR)
    assert al.plan(lambda s: True, [A, B]).pause == {B}
    clock.now = 0.5
    al.observe(B, 10 * HOUR)  # B is paused; only its queued record
    assert not al.plan(lambda s: True, [A, B]).resume
    clock.now = 2.0  # A delivered nothing for 2 s although it claims a backlog
    assert al.plan(lambda s: True, [A, B]).resume == {B}


def test_the_slowest_holding_source_is_never_paused_so_progress_is_certain() -> None:
    clock = Clock()
    al = _aligner(clock)
    for i, s in enumerate([A, B, L]):
        al.observe(s, i * 10 * HOUR)
    plan = al.plan(lambda s: True, [A, B, L])
    assert plan.pause == {B, L}
    # A becomes caught up: the paused ones hold among themselves; the earliest resumes.
    plan = al.plan(lambda s: s != A, [A, B, L])
    assert plan.resume == {B}
    assert al.paused == {L}


def test_records_without_event_time_count_as_progress_only() -> None:
    clock = Clock()
    al = _aligner(clock)
    al.observe(A, None)
    al.observe(B, 10 * HOUR)
    assert not al.plan(lambda s: True, [A, B]).pause


def test_forgotten_sources_are_neither_paused_nor_holding() -> None:
    clock = Clock()
    al = _aligner(clock)
    al.observe(A, 0)
    al.observe(B, 10 * HOUR)
    al.plan(lambda s: True, [A, B])
    al.forget([B])
    assert not al.paused
    al.forget([A])
    al.observe(B, 10 * HOUR)
    assert not al.plan(lambda s: True, [B]).pause


def test_a_topic_with_a_longer_lead_may_run_further_ahead_but_not_behind() -> None:
    clock = Clock()
    al = Aligner(max_skew_ms=HOUR, idle_after_s=1.0, clock=clock, lead_ms={"labels": 24 * HOUR})
    al.observe(A, 0)
    al.observe(L, 20 * HOUR)  # labels ahead within their lead: read on
    assert not al.plan(lambda s: True, [A, L]).pause
    al.observe(L, 30 * HOUR)
    assert al.plan(lambda s: True, [A, L]).pause == {L}
    # Behind is another matter: transactions 5 h ahead of backlogged labels wait for them.
    al2 = Aligner(max_skew_ms=HOUR, idle_after_s=1.0, clock=clock, lead_ms={"labels": 24 * HOUR})
    al2.observe(L, 0)
    al2.observe(A, 5 * HOUR)
    assert al2.plan(lambda s: True, [A, L]).pause == {A}
