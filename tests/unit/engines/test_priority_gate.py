"""The priority gate: a background request's checkpoint waits while interactive work runs and for the
linger after it (a stream's gaps between re-decodes), and a cancel ends the wait at once."""

from __future__ import annotations

import threading

from asrpro_rpc.engines.host.priority import PriorityGate


class _Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def _checkpoint_in_thread(gate: PriorityGate, cancelled: threading.Event) -> tuple[threading.Thread, list]:
    outcome: list[bool] = []
    thread = threading.Thread(target=lambda: outcome.append(gate.checkpoint(cancelled)), daemon=True)
    thread.start()
    return thread, outcome


def test_background_passes_when_nothing_interactive_ran() -> None:
    assert PriorityGate().checkpoint(threading.Event()) is False


def test_background_waits_through_interactive_work_and_its_linger() -> None:
    clock = _Clock()
    gate = PriorityGate(linger_s=1.0, clock=clock)
    with gate.interactive():
        thread, outcome = _checkpoint_in_thread(gate, threading.Event())
        thread.join(0.3)
        assert thread.is_alive(), "a background request went on while interactive work ran"
    clock.now_s += 0.5  # a stream's gap between two re-decodes
    thread.join(0.3)
    assert thread.is_alive(), "a background request went on within the linger"
    clock.now_s += 0.6
    thread.join(5.0)
    assert not thread.is_alive() and outcome == [False]


def test_a_cancel_ends_the_wait() -> None:
    gate = PriorityGate(clock=_Clock())
    cancelled = threading.Event()
    with gate.interactive():
        thread, outcome = _checkpoint_in_thread(gate, cancelled)
        cancelled.set()
        thread.join(5.0)
        assert not thread.is_alive() and outcome == [True]
