"""Offsets are released in consumption order, and only when every output was delivered."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fraudstream.stream.offsets import OffsetTracker


@given(
    outputs=st.lists(st.integers(0, 4), min_size=1, max_size=12),
    order_seed=st.randoms(use_true_random=False),
)
def test_released_offsets_never_pass_a_batch_with_outputs_in_flight(
    outputs: list[int], order_seed: object
) -> None:
    tracker = OffsetTracker()
    batches = []
    for i, n in enumerate(outputs):
        batch = tracker.open({("tx", 0): (i + 1) * 10})
        OffsetTracker.expect(batch, n)
        OffsetTracker.seal(batch)
        batches.append(batch)
    deliveries = [i for i, n in enumerate(outputs) for _ in range(n)]
    order_seed.shuffle(deliveries)  # type: ignore[attr-defined]
    remaining = list(outputs)
    committed = 0
    for i in [*deliveries, None]:
        if i is not None:
            OffsetTracker.delivered(batches[i])
            remaining[i] -= 1
        released = tracker.release()
        if released:
            committed = released[("tx", 0)]
        # Everything up to the committed offset is fully delivered; the next batch is not.
        done = committed // 10
        assert all(r == 0 for r in remaining[:done])
        assert done == len(outputs) or remaining[done] > 0 or i is None
    assert committed == len(outputs) * 10
    assert tracker.in_flight == 0


def test_a_failed_delivery_blocks_its_offsets_and_everything_after() -> None:
    tracker = OffsetTracker()
    a = tracker.open({("tx", 0): 5})
    OffsetTracker.expect(a, 1)
    OffsetTracker.seal(a)
    b = tracker.open({("tx", 0): 9})
    OffsetTracker.seal(b)
    OffsetTracker.failed(a)
    assert tracker.release() == {}
    assert tracker.blocked


def test_an_unsealed_batch_is_not_released_even_with_nothing_in_flight() -> None:
    tracker = OffsetTracker()
    tracker.open({("tx", 1): 3})
    assert tracker.release() == {}
