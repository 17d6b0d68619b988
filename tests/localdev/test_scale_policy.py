"""Scaling decisions (pure): target-based scale-out, scale-in when idle, always-ready floors."""

from __future__ import annotations

import pytest

from localdev.scale_controller.policy import Policy, decide

QUEUE = Policy(target_per_instance=16, max_instances=4, idle_timeout_s=30)


@pytest.mark.parametrize(("length", "current", "after"), [
    (1, 0, 1),  # the first message starts one instance (a cold start)
    (16, 1, 1),  # one batch per instance
    (17, 1, 2),
    (48, 1, 3),
    (1000, 0, 4),  # capped by max instances
])
def test_target_based_scale_out(length: int, current: int, after: int) -> None:
    decision = decide(QUEUE, current, length, idle_for_s=0)
    assert (decision.before, decision.after) == (current, after)
    if after > current:
        assert f"{length} message(s) / batchSize 16" in decision.reason


def test_at_most_four_instances_are_added_per_decision() -> None:
    wide = Policy(target_per_instance=1, max_instances=20)
    assert decide(wide, 0, 100, 0).after == 4
    assert decide(wide, 4, 100, 0).after == 8
    assert decide(wide, 18, 100, 0).after == 20


def test_busy_instances_are_kept_while_messages_wait_or_run() -> None:
    decision = decide(QUEUE, 4, 3, idle_for_s=0)
    assert not decision.changed and decision.reason == "busy: keep instances"


def test_an_empty_queue_removes_idle_instances_then_scales_to_zero_after_the_timeout() -> None:
    assert decide(QUEUE, 4, 0, idle_for_s=1).after == 1
    assert not decide(QUEUE, 1, 0, idle_for_s=29).changed
    to_zero = decide(QUEUE, 1, 0, idle_for_s=30)
    assert to_zero.after == 0 and to_zero.reason.startswith("scale to zero")
    assert not decide(QUEUE, 0, 0, idle_for_s=300).changed


def test_always_ready_instances_are_started_and_never_removed() -> None:
    ready = Policy(target_per_instance=16, max_instances=4, idle_timeout_s=30, always_ready=2)
    assert decide(ready, 0, 0, 0).after == 2
    assert decide(ready, 4, 0, 1).after == 2
    assert decide(ready, 3, 0, 999).after == 2
    assert not decide(ready, 2, 0, 999).changed


def test_unknown_queue_length_keeps_instances() -> None:
    assert not decide(QUEUE, 3, None, 999).changed
