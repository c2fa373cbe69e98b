"""Random transaction and label streams for the equivalence tests (hypothesis strategies)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from fraudstream.events import Label, Transaction

T0 = 1_700_000_000_000
HOUR = 3_600_000


@dataclass(frozen=True)
class Step:
    """One batch of transactions (replays included) followed by a batch of labels."""

    transactions: list[Transaction]
    labels: list[Label]


@st.composite
def streams(draw: st.DrawFn, max_steps: int = 8) -> list[Step]:
    """Batches over a few cards and terminals, jittered out of order, with replays and labels."""
    n_cards = draw(st.integers(1, 4))
    n_terms = draw(st.integers(1, 4))
    spacing = draw(st.sampled_from([60_000, HOUR, 12 * HOUR, 3 * 24 * HOUR]))
    steps: list[Step] = []
    seen: list[Transaction] = []
    clock = 0
    for _ in range(draw(st.integers(1, max_steps))):
        batch: list[Transaction] = []
        for _ in range(draw(st.integers(1, 12))):
            if seen and draw(st.integers(0, 9)) == 0:
                batch.append(draw(st.sampled_from(seen)))  # a redelivery
                continue
            clock += draw(st.integers(0, spacing))
            jitter = draw(st.integers(-3 * spacing, spacing))  # out of order, sometimes late
            has_loc = draw(st.booleans())
            tx = Transaction(
                f"x{len(seen)}",
                f"c{draw(st.integers(0, n_cards - 1))}",
                draw(st.integers(0, 50_000)) / 100,
                T0 + clock + jitter,
                draw(st.sampled_from([None, *(f"t{i}" for i in range(n_terms))])),
                channel=draw(st.sampled_from([None, "card_present", "card_not_present"])),
                lat=draw(st.floats(-80, 80)) if has_loc else None,
                lon=draw(st.floats(-180, 180)) if has_loc else None,
            )
            seen.append(tx)
            batch.append(tx)
        labels = [
            Label(draw(st.sampled_from([*(t.transaction_id for t in seen), "unknown"])),
                  draw(st.booleans()))
            for _ in range(draw(st.integers(0, 8)))
        ]  # fmt: skip
        steps.append(Step(batch, labels))
    return steps
