"""PopulationBasedTraining: exploit (clone a top trial's checkpoint) and explore, with a fixed seed (no cluster)."""
from __future__ import annotations

import json
import logging

import pytest
from scheduler_doubles import Categorical, Controller, Float, Function, Trial

from juno.air import Checkpoint
from juno.tune.schedulers import PopulationBasedTraining, TrialScheduler
from juno.tune.schedulers.pbt_explore import explore

CONTINUE, PAUSE, NOOP = TrialScheduler.CONTINUE, TrialScheduler.PAUSE, TrialScheduler.NOOP
BATCHES = [16, 32, 64, 128]
OPTIMIZERS = ["sgd", "adam", "rmsprop"]


def mutations():
    return {"lr": Float(1e-4, 0.1), "batch": BATCHES, "opt": Categorical(OPTIMIZERS)}


def population(tmp_path, seed=0, slots=None, **kwargs):
    """Four trials; trial i reports acc = i, so t0 is the bottom quartile and t3 the top one."""
    kwargs.setdefault("hyperparam_mutations", mutations())
    pbt = PopulationBasedTraining(time_attr="training_iteration", metric="acc", mode="max",
                                  perturbation_interval=2, seed=seed, **kwargs)
    c = Controller(pbt, slots=slots)
    trials = [Trial(f"t{i}", config={"lr": 0.01 * (i + 1), "batch": 32, "opt": "adam", "seed": i},
                    path=str(tmp_path / "exp" / f"t{i}"), tag=f"{i}_lr={0.01 * (i + 1):.4f}") for i in range(4)]
    c.add(*trials)
    c.start_all()
    return pbt, c, trials


def step(c, trials, t, tmp_path, checkpoints=True):
    """Every running trial reports acc = its index at time t, with a checkpoint."""
    actions = {}
    for i, trial in enumerate(trials):
        if trial.status == Trial.RUNNING:
            ckpt = Checkpoint(str(tmp_path / "ckpt" / f"{trial.trial_id}_{t}")) if checkpoints else None
            actions[trial.trial_id] = c.report(trial, acc=float(i), checkpoint=ckpt)
    return actions


def test_the_bottom_trial_exploits_the_top_trials_checkpoint_and_explores(tmp_path):
    pbt, c, trials = population(tmp_path)
    assert step(c, trials, 1, tmp_path) == dict.fromkeys(["t0", "t1", "t2", "t3"], CONTINUE)
    # t=2: each trial is ranked as it arrives; t0 came first (alone), so nobody exploits yet, but t3,
    # then in the top quartile, offers its checkpoint.
    assert step(c, trials, 2, tmp_path) == dict.fromkeys(["t0", "t1", "t2", "t3"], CONTINUE)
    top_checkpoint = trials[3].checkpoint
    step(c, trials, 3, tmp_path)
    t3_config = dict(trials[3].config)
    actions = step(c, trials, 4, tmp_path)
    # t=4: t0 is the bottom quartile and clones t3 (the only top trial): its checkpoint of t=2.
    assert actions["t0"] == NOOP  # the controller already restarted it through exploit_trial
    exploits = [call for call in c.calls if call[0] == "exploit"]
    assert len(exploits) == 1
    _, trial_id, new_config, checkpoint, new_tag = exploits[0]
    assert trial_id == "t0" and checkpoint is top_checkpoint
    # Explore: every mutated value moved within what is allowed; the rest is t3's config.
    assert new_config["seed"] == 3
    assert 1e-4 <= new_config["lr"] <= 0.1  # t3's 0.04 perturbed (x 1.2 or x 0.8) or resampled
    assert t3_config["lr"] == 0.04 and new_config["lr"] != 0.04
    assert new_config["batch"] in BATCHES and new_config["opt"] in OPTIMIZERS
    assert new_tag.startswith("0_lr=0.0100@perturbed[batch=") and f"lr={new_config['lr']:.4f}" in new_tag
    assert trials[0].config == new_config
    assert pbt.debug_string().endswith("1 perturbs")


def test_exploit_and_explore_are_deterministic_with_a_seed(tmp_path):
    def run(seed, where):
        _, c, trials = population(where, seed=seed)
        for t in range(1, 5):
            step(c, trials, t, where)
        return [call[2] for call in c.calls if call[0] == "exploit"]

    assert run(7, tmp_path / "a") == run(7, tmp_path / "b")
    assert len({json.dumps(run(seed, tmp_path / f"s{seed}")) for seed in range(6)}) > 1


def test_the_policy_log_records_each_exploit_as_ray_does(tmp_path):
    _, c, trials = population(tmp_path)
    for t in range(1, 5):
        step(c, trials, t, tmp_path)
    new_config = [call[2] for call in c.calls if call[0] == "exploit"][0]
    lines = (tmp_path / "exp" / "pbt_global.txt").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        ["0_lr=0.0100", "3_lr=0.0400", 3, 3, {"lr": 0.04, "batch": 32, "opt": "adam", "seed": 3}, new_config]]
    assert (tmp_path / "exp" / "pbt_policy_t0.txt").read_text().splitlines() == lines


def test_no_exploit_without_a_checkpoint(tmp_path, caplog):
    _, c, trials = population(tmp_path)
    with caplog.at_level(logging.INFO, logger="juno.tune.schedulers.pbt"):
        for t in range(1, 5):
            actions = step(c, trials, t, tmp_path, checkpoints=False)
    assert actions["t0"] == CONTINUE
    assert not [call for call in c.calls if call[0] == "exploit"]
    assert "no checkpoint for trial t3" in caplog.text


def test_a_trial_at_its_perturbation_point_yields_to_waiting_trials(tmp_path):
    pbt, c, trials = population(tmp_path, slots=3)  # t3 waits
    step(c, trials, 1, tmp_path)
    assert step(c, trials, 2, tmp_path) == {"t0": PAUSE, "t1": PAUSE, "t2": PAUSE}
    # choose_trial_to_run: the least trained first (t3 has trained 0).
    assert c.start_next() is trials[3]


def test_a_mutated_key_missing_from_the_config_gets_a_first_value():
    pbt = PopulationBasedTraining(metric="acc", mode="max", hyperparam_mutations={"lr": Float(0.1, 0.2),
                                                                                 "opt": {"momentum": [0.8, 0.9]}},
                                  seed=1)
    trial = Trial("a", config={})
    Controller(pbt).add(trial)
    assert 0.1 <= trial.config["lr"] <= 0.2 and trial.config["opt"]["momentum"] in (0.8, 0.9)
    assert trial.evaluated_params["lr"] == trial.config["lr"]


def test_synch_mode_perturbs_the_population_when_the_last_trial_arrives(tmp_path):
    pbt, c, trials = population(tmp_path, synch=True)
    step(c, trials, 1, tmp_path)
    actions = step(c, trials, 2, tmp_path)
    # All wait at the sync point; the last (t3) perturbs everyone: t0 (bottom) clones t3 (top).
    assert actions == {"t0": PAUSE, "t1": PAUSE, "t2": PAUSE, "t3": PAUSE}
    exploits = [call for call in c.calls if call[0] == "exploit"]
    assert [(e[1], e[3]) for e in exploits] == [("t0", trials[3].checkpoint)]
    # Until the next sync point (4), all may run again, the least trained first.
    assert len(c.start_all()) == 4


def test_require_attrs_false_skips_results_without_the_metric(tmp_path, caplog):
    pbt, c, trials = population(tmp_path, require_attrs=False)
    with caplog.at_level(logging.WARNING, logger="juno.tune.schedulers.pbt"):
        assert c.report(trials[0], loss=1.0) == CONTINUE
    assert "has no 'acc'" in caplog.text


def test_save_and_restore_keeps_scores_and_checkpoints(tmp_path):
    pbt, c, trials = population(tmp_path)
    for t in (1, 2, 3):
        step(c, trials, t, tmp_path)
    pbt.save(str(tmp_path / "pbt.pkl"))
    restored = PopulationBasedTraining(hyperparam_mutations={"x": [1]})
    restored.restore(str(tmp_path / "pbt.pkl"))
    c.scheduler = restored
    assert step(c, trials, 4, tmp_path)["t0"] == NOOP


# ------------------------------------------------------------------ explore


def explore_once(config, mutations, resample_probability, seed=0, factors=(1.2, 0.8), custom=None):
    import numpy as np

    return explore(config, mutations, resample_probability, factors, custom, np.random.default_rng(seed))


@pytest.mark.parametrize("seed", range(5))
def test_perturbing_multiplies_numbers_and_shifts_lists(seed):
    config = {"lr": 0.05, "batch": 32, "opt": "adam", "layers": 4}
    new, ops = explore_once(config, {**mutations(), "layers": lambda: 3}, 0.0, seed)
    assert new["lr"] in (pytest.approx(0.06), pytest.approx(0.04))
    assert new["batch"] in (16, 64) and new["opt"] in ("sgd", "rmsprop")
    assert new["layers"] in (4, 3) and isinstance(new["layers"], int)  # int(4 * 0.8) = 3: an int stays one
    assert ops["lr"] in ("* 1.2", "* 0.8") and ops["batch"].startswith("shift ")


def test_perturbing_keeps_values_inside_the_domain_and_list():
    new, ops = explore_once({"lr": 0.1, "batch": 128}, {"lr": Float(1e-4, 0.1), "batch": BATCHES}, 0.0,
                            factors=(1.5,))
    assert new["lr"] == 0.1  # 0.15 clipped to the upper bound
    config = {"batch": 16}
    shifted = {explore_once(config, {"batch": BATCHES}, 0.0, seed)[0]["batch"] for seed in range(10)}
    assert shifted == {16, 32}  # a shift left from the first value stays put ("noop")


def test_resampling_draws_from_the_space_and_a_value_outside_a_list_is_resampled():
    new, ops = explore_once({"lr": 0.05, "batch": 32}, {"lr": Float(0.5, 0.6), "batch": BATCHES}, 1.0)
    assert 0.5 <= new["lr"] <= 0.6 and ops == {"lr": "resample", "batch": "resample"}
    new, ops = explore_once({"batch": 33}, {"batch": BATCHES}, 0.0)
    assert new["batch"] in BATCHES and ops["batch"] == "resample"


def test_nested_mutations_and_custom_explore_fn():
    def clamp(config):
        config["opt"]["momentum"] = min(config["opt"]["momentum"], 0.95)
        return config

    new, ops = explore_once({"opt": {"momentum": 0.9, "name": "sgd"}}, {"opt": {"momentum": Float(0.5, 0.99)}},
                            0.0, factors=(1.2,), custom=clamp)
    assert new == {"opt": {"momentum": 0.95, "name": "sgd"}} and ops == {"opt": {"momentum": "* 1.2"}}


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(), ValueError, "give hyperparam_mutations or custom_explore_fn"),
    (dict(hyperparam_mutations={"lr": 5}), TypeError, r"hyperparam_mutations\['lr'\] must be a list"),
    (dict(hyperparam_mutations={"lr": Function(lambda spec: 1)}), ValueError, "is a tune.sample_from"),
    (dict(hyperparam_mutations={"a": {"b": []}}), ValueError, r"hyperparam_mutations\['a'\]\['b'\] is an empty list"),
    (dict(hyperparam_mutations={"lr": [1]}, quantile_fraction=0.6), ValueError, "quantile_fraction must be"),
    (dict(hyperparam_mutations={"lr": [1]}, perturbation_interval=0), ValueError, "perturbation_interval must be"),
    (dict(hyperparam_mutations={"lr": [1]}, mode="up"), ValueError, "unknown mode 'up'"),
])
def test_bad_arguments_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        PopulationBasedTraining(**kwargs)
