"""MedianStoppingRule on scripted results (no cluster)."""
from __future__ import annotations

from scheduler_doubles import Controller, Trial

from juno.tune.schedulers import MedianStoppingRule, TrialScheduler

CONTINUE, PAUSE, STOP = TrialScheduler.CONTINUE, TrialScheduler.PAUSE, TrialScheduler.STOP


def run(scheduler, curves, slots=None):
    """Run each trial's curve to its end, one trial after the other; the actions per trial."""
    c = Controller(scheduler, slots=slots)
    trials = {name: Trial(name) for name in curves}
    c.add(*trials.values())
    c.start_all()
    actions = {}
    for name, curve in curves.items():
        actions[name] = []
        for value in curve:
            if trials[name].status != Trial.RUNNING:
                break
            actions[name].append(c.report(trials[name], **{scheduler.metric: value}))
    return c, trials, actions


def test_a_trial_worse_than_the_median_of_running_averages_stops():
    """At t=2 the others' running averages are 2, 4, 6 (median 4): d's best, 1, is worse and it stops."""
    rule = MedianStoppingRule(time_attr="training_iteration", metric="acc", mode="max", grace_period=2,
                              min_samples_required=2)
    c, trials, actions = run(rule, {
        "a": [1, 2, 3, 4], "b": [2, 4, 6, 8], "c": [3, 6, 9, 12], "d": [0.5, 1.0, 1.5, 2.0]})
    assert actions["a"] == actions["b"] == actions["c"] == [CONTINUE] * 4
    assert actions["d"] == [CONTINUE, STOP]
    assert trials["d"].status == Trial.TERMINATED
    assert rule.debug_string() == "Using MedianStoppingRule: num_stopped=1."


def test_min_mode_stops_the_highest_loss():
    rule = MedianStoppingRule(time_attr="training_iteration", metric="loss", mode="min", grace_period=2,
                              min_samples_required=2)
    _, _, actions = run(rule, {"a": [9, 8, 7], "b": [5, 4, 3], "late": [20, 19, 18]})
    assert actions["late"] == [CONTINUE, STOP]


def test_running_averages_ignore_results_before_the_grace_period():
    """a's 100 at t=1 is before the grace period: the median at t=2 is mean(2, 4) = 3, not 27.5."""
    rule = MedianStoppingRule(time_attr="training_iteration", metric="acc", mode="max", grace_period=2,
                              min_samples_required=2)
    _, _, actions = run(rule, {"a": [100, 2, 2], "b": [4, 4, 4], "d": [10, 10, 10]})
    assert actions["d"] == [CONTINUE] * 3


def test_soft_stop_pauses_and_a_resumed_trial_runs_on():
    rule = MedianStoppingRule(time_attr="training_iteration", metric="acc", mode="max", grace_period=1,
                              min_samples_required=1, hard_stop=False)
    c, trials, actions = run(rule, {"good": [5, 5, 5], "bad": [1, 1, 1]})
    assert actions["bad"] == [PAUSE]
    trials["bad"].status = Trial.RUNNING  # resumed by the controller: no longer judged
    assert c.report(trials["bad"], acc=1) == CONTINUE


def test_with_too_few_samples_a_trial_yields_to_waiting_trials():
    """One slot: a trial past the grace period with nobody to compare against pauses for a pending one,
    at most once per min_time_slice."""
    rule = MedianStoppingRule(time_attr="training_iteration", metric="acc", mode="max", grace_period=1,
                              min_time_slice=3)
    c = Controller(rule, slots=1)
    a, b = Trial("a"), Trial("b")
    c.add(a, b)
    assert c.start_next() is a
    assert c.report(a, acc=1) == PAUSE  # t=1: b is waiting
    assert c.start_next() is b  # FIFO's order: the pending trial first
    assert c.report(b, acc=1) == PAUSE  # one sample (a) of the 3 required, and a waits
    assert c.start_next() is a
    # a yielded at t=1: it runs on until t - 1 > min_time_slice, then yields again.
    assert [c.report(a, acc=1) for _ in range(4)] == [CONTINUE, CONTINUE, CONTINUE, PAUSE]
