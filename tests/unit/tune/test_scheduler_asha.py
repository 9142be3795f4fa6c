"""TrialScheduler's shared checks, FIFOScheduler and ASHA on scripted learning curves (no cluster)."""
from __future__ import annotations

import pytest
from scheduler_doubles import Controller, Trial

from juno.tune.schedulers import (ASHAScheduler, AsyncHyperBandScheduler, FIFOScheduler, HyperBandScheduler,
                                  MedianStoppingRule, PopulationBasedTraining, TrialScheduler, create_scheduler)

# ------------------------------------------------------------------ FIFO


def test_fifo_runs_pending_trials_in_order_then_paused_ones():
    fifo = FIFOScheduler()
    c = Controller(fifo, slots=2)
    a, b, d = Trial("a"), Trial("b"), Trial("d")
    c.add(a, b, d)
    assert c.start_all() == [a, b]  # two slots
    assert c.report(a, acc=1.0) == TrialScheduler.CONTINUE
    c.pause_trial(a)
    assert c.start_next() is d  # PENDING before PAUSED
    c.finish(b)
    assert c.start_next() is a
    assert fifo.debug_string() == "Using FIFO scheduling algorithm."


def test_set_search_properties_fills_only_what_is_missing():
    asha = ASHAScheduler()
    assert asha.set_search_properties("acc", "max") is True
    assert (asha.metric, asha.mode) == ("acc", "max")
    # A scheduler with its own metric refuses the TuneConfig's (Ray's Tuner then raises).
    assert ASHAScheduler(metric="loss").set_search_properties("acc", None) is False
    assert ASHAScheduler(mode="min").set_search_properties(None, "max") is False
    with pytest.raises(ValueError, match="unknown mode 'maximum'"):
        ASHAScheduler().set_search_properties("acc", "maximum")


# ------------------------------------------------------------------ ASHA

# Eight learning curves acc(t) = base + slope * t, reported in trial order at each t (mode "max").
BASE = [3, 7, 1, 5, 8, 2, 6, 4]
SLOPE = [3, 0.5, 2, 1, 0.2, 1, 0.8, 1.5]


def run_asha(scheduler):
    c = Controller(scheduler)
    trials = [Trial(f"t{i}") for i in range(8)]
    c.add(*trials)
    c.start_all()
    stopped_at = {}
    for t in range(1, 9):
        for i, trial in enumerate(trials):
            if trial.status == Trial.RUNNING and c.report(trial, acc=BASE[i] + SLOPE[i] * t) == TrialScheduler.STOP:
                stopped_at[trial.trial_id] = t
    return stopped_at


def test_asha_rf2_stops_trials_below_the_rung_median():
    """rf=2, rungs 1, 2, 4, 8: a trial stops at a rung when its score is below the median recorded there.

    t=1 scores t0..t7: 6, 7.5, 3, 6, 8.2, 3, 6.8, 5.5. t2 (3 < median(6, 7.5)), t5 (3 < 6) and t7
    (5.5 < 6) stop; t3 (6, median 6) goes on: ties survive. t=2: t0 9, t1 8, t3 7, t4 8.4, t6 7.6:
    t1 (8 < 9), t3 (7 < 8.5), t6 (7.6 < 8.2) stop. t=4: t0 15, t4 8.8: t4 stops. t0 stops at max_t.
    """
    asha = ASHAScheduler(metric="acc", mode="max", grace_period=1, reduction_factor=2, max_t=8)
    assert [m for m, _ in asha._brackets[0].rungs] == [8, 4, 2, 1]
    assert run_asha(asha) == {"t2": 1, "t5": 1, "t7": 1, "t1": 2, "t3": 2, "t6": 2, "t4": 4, "t0": 8}
    assert "num_stopped=8" in asha.debug_string()


def test_asha_min_mode_mirrors_max_mode():
    """Negated curves with mode "min" give the same decisions."""
    class Negated(Controller):
        def report(self, trial, **metrics):
            return super().report(trial, acc=-metrics["acc"])

    asha = ASHAScheduler(metric="acc", mode="min", reduction_factor=2, max_t=8)
    c = Negated(asha)
    trials = [Trial(f"t{i}") for i in range(8)]
    c.add(*trials)
    c.start_all()
    stopped = []
    for t in range(1, 9):
        for i, trial in enumerate(trials):
            if trial.status == Trial.RUNNING and c.report(trial, acc=BASE[i] + SLOPE[i] * t) == TrialScheduler.STOP:
                stopped.append((trial.trial_id, t))
    assert dict(stopped) == {"t2": 1, "t5": 1, "t7": 1, "t1": 2, "t3": 2, "t6": 2, "t4": 4, "t0": 8}


def test_asha_without_stop_last_trials_lets_trials_run_past_max_t():
    asha = ASHAScheduler(metric="acc", mode="max", reduction_factor=2, max_t=2, stop_last_trials=False)
    c = Controller(asha)
    a = Trial("a")
    c.add(a)
    c.start_all()
    assert [c.report(a, acc=1.0) for _ in range(5)] == [TrialScheduler.CONTINUE] * 5


def test_asha_rungs_and_brackets_follow_ray():
    """Rungs at grace_period * rf**(k + s) up to max_t; bracket s starts s rungs later."""
    asha = AsyncHyperBandScheduler(max_t=100, grace_period=1, reduction_factor=4, brackets=3, seed=0)
    assert [[m for m, _ in b.rungs] for b in asha._brackets] == [[64, 16, 4, 1], [64, 16, 4], [64, 16]]
    c = Controller(asha)
    c.add(*[Trial(f"t{i}") for i in range(300)])
    counts = [sum(1 for b in asha._trial_info.values() if b is bracket) for bracket in asha._brackets]
    assert counts[0] > counts[1] > counts[2] > 0  # softmax over rung counts, as Ray assigns them
    # The same seed gives the same assignment.
    again = AsyncHyperBandScheduler(max_t=100, grace_period=1, reduction_factor=4, brackets=3, seed=0)
    Controller(again).add(*[Trial(f"t{i}") for i in range(300)])
    assert [asha._brackets.index(b) for b in asha._trial_info.values()] == \
        [again._brackets.index(b) for b in again._trial_info.values()]


def test_asha_counts_a_completed_trials_last_result_at_its_rung():
    asha = ASHAScheduler(metric="acc", mode="max", reduction_factor=2, max_t=8)
    c = Controller(asha)
    a, b = Trial("a"), Trial("b")
    c.add(a, b)
    c.start_all()
    c.report(a, acc=1.0)
    c.finish(a, acc=10.0, training_iteration=2)  # a's last result (t=2, acc 10) joins rung 2 ...
    assert c.report(b, acc=5.0) == TrialScheduler.CONTINUE  # rung 1 holds a's 1.0
    assert c.report(b, acc=5.0) == TrialScheduler.STOP  # ... so b's 5 is below rung 2's cutoff


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_t=0), "max_t must be positive"),
    (dict(grace_period=0), "grace_period must be positive"),
    (dict(grace_period=10, max_t=5), "grace_period .10. must be <= max_t .5."),
    (dict(reduction_factor=1), "reduction_factor must be > 1"),
    (dict(brackets=0), "brackets must be a positive int"),
    (dict(mode="best"), "unknown mode 'best'"),
])
def test_asha_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ASHAScheduler(**kwargs)


# ------------------------------------------------------------------ checks shared by every scheduler

def make(cls, **kwargs):
    if cls is PopulationBasedTraining:
        kwargs.setdefault("hyperparam_mutations", {"lr": [0.1, 0.01]})
    return cls(**kwargs)


RANKING = [AsyncHyperBandScheduler, HyperBandScheduler, MedianStoppingRule, PopulationBasedTraining]


@pytest.mark.parametrize("cls", RANKING)
def test_missing_metric_or_mode_is_named_at_the_first_result(cls):
    for kwargs, missing in ((dict(), "`metric` and `mode`"), (dict(metric="acc"), "`mode`"),
                            (dict(mode="max"), "`metric`")):
        scheduler = make(cls, **kwargs)
        c = Controller(scheduler)
        trial = Trial("a", config={"lr": 0.1})
        c.add(trial)
        c.start_all()
        with pytest.raises(ValueError, match=f"{cls.__name__} has no {missing}.*tune.TuneConfig"):
            c.report(trial, acc=1.0)


@pytest.mark.parametrize("cls", RANKING)
def test_unknown_mode_is_named(cls):
    with pytest.raises(ValueError, match="unknown mode 'maximize'.*'min' or 'max'"):
        make(cls, metric="acc", mode="maximize")


@pytest.mark.parametrize("cls", RANKING)
def test_a_result_without_the_metric_names_it_and_the_keys_it_has(cls):
    scheduler = make(cls, metric="acc", mode="max")
    c = Controller(scheduler)
    trial = Trial("a", config={"lr": 0.1})
    c.add(trial)
    c.start_all()
    with pytest.raises(ValueError, match=r"without the metric 'acc'; the result has \['accuracy', 'done'"):
        c.report(trial, accuracy=0.5)


@pytest.mark.parametrize("cls", RANKING)
def test_a_result_with_only_tunes_own_keys_is_skipped(cls):
    """Some trainables end with a bare {"done": True} result: no metric to judge, nothing to fail on."""
    scheduler = make(cls, metric="acc", mode="max")
    c = Controller(scheduler)
    trial = Trial("a", config={"lr": 0.1})
    c.add(trial)
    c.start_all()
    assert c.report(trial) == TrialScheduler.CONTINUE


@pytest.mark.parametrize("cls", RANKING)
def test_a_last_result_without_the_metric_is_skipped(cls):
    """The trial is over: its earlier results were checked, and a closing result may carry other keys."""
    scheduler = make(cls, metric="acc", mode="max")
    c = Controller(scheduler)
    trial = Trial("a", config={"lr": 0.1})
    c.add(trial)
    c.start_all()
    c.report(trial, acc=1.0)
    assert scheduler.on_trial_result(c, trial, {"note": "x", "training_iteration": 2, "time_total_s": 2.0,
                                                "done": True}) == TrialScheduler.CONTINUE


def test_create_scheduler_by_name():
    assert isinstance(create_scheduler("asha", metric="acc", mode="max"), AsyncHyperBandScheduler)
    assert isinstance(create_scheduler("fifo"), FIFOScheduler)
    with pytest.raises(ValueError, match="unknown scheduler 'ashaa'; known schedulers: .*asha"):
        create_scheduler("ashaa")


def test_asha_save_and_restore_carries_the_rungs(tmp_path):
    """A restored ASHA judges new results against the rungs recorded before (Tuner.restore)."""
    asha = ASHAScheduler(metric="acc", mode="max", reduction_factor=2, max_t=8)
    c = Controller(asha)
    a, b = Trial("a"), Trial("b")
    c.add(a, b)
    c.start_all()
    c.report(a, acc=10.0)
    asha.save(str(tmp_path / "scheduler.pkl"))

    restored = ASHAScheduler()
    restored.restore(str(tmp_path / "scheduler.pkl"))
    assert (restored.metric, restored.mode) == ("acc", "max")
    c2 = Controller(restored)
    b2 = Trial("b")  # the restored experiment's own Trial object
    c2.trials.append(b2)
    b2.status = Trial.RUNNING
    assert c2.report(b2, acc=5.0) == TrialScheduler.STOP

    with pytest.raises(ValueError, match="holds the state of AsyncHyperBandScheduler, not of MedianStoppingRule"):
        MedianStoppingRule().restore(str(tmp_path / "scheduler.pkl"))
