"""The bench's timeline reads each step's end and duration from up's progress lines."""

from __future__ import annotations

import time

from bench.timeline import Timeline, table


def test_steps_are_placed_by_their_end_and_duration() -> None:
    run = Timeline("local: cold up, 1 tenant(s)")
    run.started = time.monotonic() - 2.0  # up started two seconds ago
    run("starting environment 'x': backend local, isolation dedicated, tenants acme")
    run("  ok  postgres.acme                  0.50s  127.0.0.1:5432")
    run("  ok  seed postgres.acme             0.25s")
    run.done()
    (name, start, end), (seed, _, _) = run.steps
    assert (name, seed) == ("postgres.acme", "seed postgres.acme")
    assert 1.4 < start < 1.6 and 1.9 < end < 2.2
    assert run.total >= 2.0
    assert "| postgres.acme | 1.5" in "\n".join(table([run]))
