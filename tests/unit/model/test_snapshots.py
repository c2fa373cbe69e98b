"""The in-memory snapshot store against a brute-force model of its rules."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.model.snapshots import MemorySnapshotStore

puts = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 100), st.integers(1, 30)),
    max_size=30,
)


@given(puts)
@settings(max_examples=200, deadline=None)
def test_snapshot_is_the_first_put_until_event_time_passes_its_ttl(
    ops: list[tuple[str, int, int]],
) -> None:
    store = MemorySnapshotStore()
    first: dict[str, tuple[float, int, int]] = {}
    now = -1
    for i, (tx_id, t, ttl) in enumerate(ops):
        now = max(now, t)
        store.put(tx_id, {"i": float(i)}, t, ttl)
        first = {k: v for k, v in first.items() if v[2] > now}  # expired ids are forgotten
        if tx_id not in first and t + ttl > now:
            first[tx_id] = (float(i), t, t + ttl)
    expected = {k: ({"i": v[0]}, v[1]) for k, v in first.items() if v[2] > now}
    assert store.get_many(["a", "b", "c", "d"]) == expected
