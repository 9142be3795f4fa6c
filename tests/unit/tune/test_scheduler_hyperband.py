"""HyperBandScheduler: brackets, pausing at a milestone, halving, resuming the best (no cluster)."""
from __future__ import annotations

import pytest
from scheduler_doubles import Controller, Trial

from juno.tune.schedulers import HyperBandScheduler, TrialScheduler

CONTINUE, PAUSE, STOP = TrialScheduler.CONTINUE, TrialScheduler.PAUSE, TrialScheduler.STOP


def brackets(hb):
    return [[(b._n, b._r, len(b.live_trials)) for b in band if b is not None] for band in hb._hyperbands]


def test_brackets_have_rays_sizes_and_fill_in_order():
    """max_t=81, eta=3: brackets (n, r) = (5, 81), (8, 27), (15, 9), (34, 3), (81, 1), then a new band."""
    hb = HyperBandScheduler(metric="acc", mode="max")
    c = Controller(hb)
    c.add(*[Trial(f"t{i}") for i in range(5 + 8 + 15 + 34 + 81 + 1)])
    assert brackets(hb) == [[(5, 81, 5), (8, 27, 8), (15, 9, 15), (34, 3, 34), (81, 1, 81)], [(5, 81, 1)]]
    assert "total_brackets=6" in hb.debug_string()


def halving_setup():
    """max_t=9, eta=3: t0-t2 fill bracket (n=3, r=9), t3-t7 bracket (n=5, r=3)."""
    hb = HyperBandScheduler(metric="acc", mode="max", max_t=9, reduction_factor=3)
    c = Controller(hb)
    trials = {f"t{i}": Trial(f"t{i}") for i in range(8)}
    c.add(*trials.values())
    assert brackets(hb) == [[(3, 9, 3), (5, 3, 5)]]
    assert len(c.start_all()) == 8
    return hb, c, trials


QUALITY = {"t3": 5, "t4": 1, "t5": 4, "t6": 2, "t7": 3}


def test_trials_pause_at_the_milestone_and_the_best_third_resume():
    hb, c, trials = halving_setup()
    for it in (1, 2):
        for tid in QUALITY:
            assert c.report(trials[tid], acc=QUALITY[tid] * it) == CONTINUE
    # At the milestone (3) the first four pause and wait for the bracket's last trial.
    for tid in ("t3", "t4", "t5", "t6"):
        assert c.report(trials[tid], acc=QUALITY[tid] * 3) == PAUSE
    assert c.calls == [("pause", "t3"), ("pause", "t4"), ("pause", "t5"), ("pause", "t6")]
    # t7 completes the rung: ceil(5 / 3) = 2 go on (t3, t5); t4 and t6 are stopped, t7 itself told to STOP.
    assert c.report(trials["t7"], acc=QUALITY["t7"] * 3) == STOP
    assert c.calls[4:] == [("stop", "t4"), ("stop", "t6"), ("stop", "t7")]
    assert brackets(hb)[0][1] == (2, 9, 2)
    # The paused good trials are the ones choose_trial_to_run hands back.
    assert [c.start_next(), c.start_next(), c.start_next()] == [trials["t3"], trials["t5"], None]
    for it in range(4, 9):
        assert c.report(trials["t3"], acc=50) == CONTINUE
        assert c.report(trials["t5"], acc=40) == CONTINUE
    assert c.report(trials["t3"], acc=50) == PAUSE  # at 9 = max_t, waits for t5
    assert c.report(trials["t5"], acc=40) == STOP  # the bracket is done: t5 stops, paused t3 is stopped
    assert c.calls[-2:] == [("stop", "t3"), ("stop", "t5")]
    assert {tid: t.status for tid, t in trials.items() if tid in QUALITY} == dict.fromkeys(QUALITY, Trial.TERMINATED)
    assert "num_stopped=3" in hb.debug_string()


def test_min_mode_keeps_the_lowest():
    hb = HyperBandScheduler(metric="loss", mode="min", max_t=9, reduction_factor=3)
    c = Controller(hb)
    trials = [Trial(f"t{i}") for i in range(8)]
    c.add(*trials)
    c.start_all()
    for trial, loss in zip(trials[3:], [5, 1, 4, 2, 3]):
        for it in (1, 2, 3):
            action = c.report(trial, loss=loss)
    # t7 completes the rung: the lowest two (t4: 1, t6: 2) go on; t7 (3) is told to STOP, t3 and t5 are stopped.
    assert action == STOP
    assert {t.trial_id: t.status for t in trials[3:]} == {
        "t3": Trial.TERMINATED, "t4": Trial.PAUSED, "t5": Trial.TERMINATED, "t6": Trial.PAUSED,
        "t7": Trial.TERMINATED}
    assert {c.start_next().trial_id, c.start_next().trial_id} == {"t4", "t6"}


def test_a_trial_that_fails_while_the_others_wait_lets_the_bracket_halve():
    hb, c, trials = halving_setup()
    for tid in ("t3", "t4", "t5", "t6"):
        for it in (1, 2, 3):
            c.report(trials[tid], acc=QUALITY[tid] * it)
    assert [trials[t].status for t in ("t3", "t4", "t5", "t6")] == [Trial.PAUSED] * 4
    trials["t7"].status = Trial.ERROR
    hb.on_trial_error(c, trials["t7"])
    # Four live trials were halved to two (t3, t5): t4 and t6 stopped, t3 and t5 to resume.
    assert c.calls[-2:] == [("stop", "t4"), ("stop", "t6")]
    assert {c.start_next().trial_id, c.start_next().trial_id} == {"t3", "t5"}


def test_the_last_trial_failing_ends_its_bracket_and_stops_the_paused_ones():
    hb, c, trials = halving_setup()
    for tid in ("t0", "t1"):  # bracket (n=3, r=9): no halving left, all run to max_t
        for it in range(1, 10):
            action = c.report(trials[tid], acc=it)
        assert action == PAUSE
    trials["t2"].status = Trial.ERROR
    hb.on_trial_error(c, trials["t2"])
    assert c.calls[-2:] == [("stop", "t0"), ("stop", "t1")]
    assert trials["t0"].status == trials["t1"].status == Trial.TERMINATED


def test_pending_trials_start_before_a_bracket_halves():
    """With one slot, each trial pauses at the milestone so the next pending one starts; the last ends the bracket."""
    hb = HyperBandScheduler(metric="acc", mode="max", max_t=9, reduction_factor=3)
    c = Controller(hb, slots=1)
    trials = [Trial(f"t{i}") for i in range(3)]  # one bracket (n=3, r=9)
    c.add(*trials)
    order = []
    for _ in range(3):
        trial = c.start_next()
        order.append(trial.trial_id)
        for it in range(1, 10):
            action = c.report(trial, acc=it)
        assert trial.status in (Trial.PAUSED, Trial.TERMINATED)
    assert order == ["t0", "t1", "t2"]
    assert action == STOP and c.start_next() is None
    assert all(t.status == Trial.TERMINATED for t in trials)


def test_save_and_restore_mid_bracket(tmp_path):
    hb, c, trials = halving_setup()
    for tid in ("t3", "t4", "t5", "t6"):
        for it in (1, 2, 3):
            c.report(trials[tid], acc=QUALITY[tid] * it)
    hb.save(str(tmp_path / "hb.pkl"))
    restored = HyperBandScheduler()
    restored.restore(str(tmp_path / "hb.pkl"))
    c.scheduler = restored
    for it in (1, 2):
        c.report(trials["t7"], acc=3 * it)
    # The restored bracket still holds the others' rung results (t3 15, t4 3, t5 12, t6 6): with
    # t7's 20 the best two are t7 and t3, so t7 goes on and t4, t6, t5 are stopped.
    assert c.report(trials["t7"], acc=20) == CONTINUE
    assert c.calls[-3:] == [("stop", "t4"), ("stop", "t6"), ("stop", "t5")]
    assert c.start_next() is trials["t3"]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="max_t must be positive"):
        HyperBandScheduler(max_t=0)
    with pytest.raises(ValueError, match="reduction_factor must be > 1"):
        HyperBandScheduler(reduction_factor=1)
