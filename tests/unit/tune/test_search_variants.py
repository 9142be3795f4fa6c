"""BasicVariantGenerator and the variant generation under it: grids, samples, sample_from, tags."""
import pytest

from juno.tune.search import BasicVariantGenerator, grid_search, sample_from
from juno.tune.search import sample as s
from juno.tune.search.variant_generator import experiment_tag, format_vars

FINISHED = BasicVariantGenerator.FINISHED


def run_all(space, num_samples=1, **kwargs):
    """(configs, suggestions) of a whole search, each trial completed as it starts."""
    gen = BasicVariantGenerator(**kwargs)
    gen.set_search_properties("loss", "min", space, num_samples=num_samples)
    configs, suggestions = [], []
    for i in range(1000):
        config = gen.suggest(f"t_{i:05d}")
        if config == FINISHED:
            break
        configs.append(config)
        suggestions.append(gen.suggestion(f"t_{i:05d}"))
        gen.on_trial_complete(f"t_{i:05d}", {"loss": 0})
    assert gen.is_finished()
    return configs, suggestions, gen


def test_grid_times_num_samples_with_the_first_axis_fastest():
    space = {"a": grid_search([1, 2, 3]), "b": grid_search(["x", "y"]), "lr": s.uniform(0, 1), "const": 7}
    configs, _, gen = run_all(space, num_samples=2, random_state=0)
    assert len(configs) == gen.total_samples == 12
    assert [(c["a"], c["b"]) for c in configs[:6]] == [(1, "x"), (2, "x"), (3, "x"), (1, "y"), (2, "y"), (3, "y")]
    assert configs[6:] != configs[:6] and [(c["a"], c["b"]) for c in configs[6:]] == \
        [(c["a"], c["b"]) for c in configs[:6]]  # the grid again, new samples
    assert all(c["const"] == 7 and 0 <= c["lr"] <= 1 for c in configs)
    assert len({c["lr"] for c in configs}) == 12


def test_nested_grids_and_grids_holding_search_spaces():
    space = {"model": {"layers": grid_search([1, 2]), "act": {"kind": grid_search(["relu", "tanh"])}},
             "opt": grid_search([{"name": "sgd", "lr": s.uniform(0, 0.1)}, {"name": "adam"}])}
    configs, suggestions, gen = run_all(space, random_state=1)
    assert len(configs) == gen.total_samples == 8
    assert {(c["model"]["layers"], c["model"]["act"]["kind"], c["opt"]["name"]) for c in configs} == \
        {(la, k, n) for la in (1, 2) for k in ("relu", "tanh") for n in ("sgd", "adam")}
    sgd = [c for c in configs if c["opt"]["name"] == "sgd"]
    assert all(0 <= c["opt"]["lr"] <= 0.1 for c in sgd)
    assert "model/act/kind" in suggestions[0].evaluated_params


def test_constant_grid_search_keeps_samples_across_the_grid():
    configs, _, _ = run_all({"g": grid_search([1, 2, 3]), "x": s.uniform(0, 1)}, constant_grid_search=True,
                            random_state=2)
    assert len({c["x"] for c in configs}) == 1
    configs, _, _ = run_all({"g": grid_search([1, 2, 3]), "x": s.uniform(0, 1)}, random_state=2)
    assert len({c["x"] for c in configs}) == 3


def test_sample_from_reads_values_it_depends_on_in_either_spelling():
    space = {"double": sample_from(lambda spec: spec.config.half * 2),
             "quad": sample_from(lambda spec: spec["config"]["double"] * 2),
             "half": s.randint(1, 100), "g": grid_search([10, 20]),
             "plus_g": sample_from(lambda spec: spec.config.g + spec.config.half),
             "free": sample_from(lambda: "no spec")}
    configs, _, _ = run_all(space, num_samples=3, random_state=3)
    assert len(configs) == 6
    for c in configs:
        assert c["double"] == 2 * c["half"] and c["quad"] == 4 * c["half"] and c["plus_g"] == c["g"] + c["half"]
        assert c["free"] == "no spec"


def test_sample_from_cycles_and_errors_name_the_keys():
    cycle = {"a": sample_from(lambda spec: spec.config.b), "b": sample_from(lambda spec: spec.config.a)}
    with pytest.raises(ValueError, match=r"a reads b.*b reads a"):
        run_all(cycle)
    with pytest.raises(ValueError, match=r"model/lr: sample_from.*ZeroDivisionError"):
        run_all({"model": {"lr": sample_from(lambda spec: 1 / 0)}})
    with pytest.raises(ValueError, match="no key 'missing'"):
        run_all({"x": sample_from(lambda spec: spec.config.missing)})


@pytest.mark.parametrize("space, words", [
    ({"a": {"b": {"grid_search": 3}}}, "a/b: grid_search needs a list"),
    ({"a": {"grid_search": []}}, "a: grid_search needs at least one value"),
    ({"a": {"grid_search": [1], "other": 2}}, "a: a grid_search dict must hold only"),
    ({"layers": (s.uniform(0, 1), 2)}, "layers: a search space inside a tuple"),
])
def test_unsamplable_spaces_name_the_key(space, words):
    gen = BasicVariantGenerator()
    with pytest.raises(ValueError, match=words):
        gen.set_search_properties(None, None, space)


def test_domains_inside_lists_are_sampled():
    configs, suggestions, _ = run_all({"layers": [s.choice([8, 16]), 4, {"d": grid_search([0.1, 0.2])}]},
                                      random_state=0)
    assert len(configs) == 2 and all(c["layers"][0] in (8, 16) and c["layers"][1] == 4 for c in configs)
    assert set(suggestions[0].evaluated_params) == {"layers/0", "layers/2/d"}


def test_experiment_tags_and_evaluated_params_follow_ray():
    configs, suggestions, _ = run_all({"lr": grid_search([0.01, 0.1]), "momentum": grid_search([0.9]),
                                       "opt": {"name": grid_search(["sgd/fast"])}, "epochs": 3})
    assert [x.experiment_tag for x in suggestions] == ["0_lr=0.0100,momentum=0.9000,name=sgd_fast",
                                                       "1_lr=0.1000,momentum=0.9000,name=sgd_fast"]
    assert suggestions[1].evaluated_params == {"lr": 0.1, "momentum": 0.9, "opt/name": "sgd/fast"}
    assert [x.index for x in suggestions] == [0, 1]
    _, plain, _ = run_all({"epochs": 3}, num_samples=2)
    assert [x.experiment_tag for x in plain] == ["0", "1"] and plain[0].evaluated_params == {}
    assert experiment_tag(3, {("config", "lr"): 0.01, ("config", "momentum"): 0.9}) == "3_lr=0.0100,momentum=0.9000"
    assert format_vars({("config", "act"): "a b!"}) == "act=a_b"


def test_points_to_evaluate_come_first_and_use_up_num_samples():
    space = {"lr": s.uniform(0, 1), "g": grid_search([1, 2]), "opt": {"m": s.uniform(0, 1), "n": 5}}
    points = [{"lr": 0.5, "opt": {"m": 0.25}}, {"lr": 0.7, "g": 9}]
    configs, suggestions, gen = run_all(space, num_samples=3, points_to_evaluate=points, random_state=0)
    # point 1 leaves the grid open (2 trials), point 2 fixes it (1), then one full pass (2)
    assert len(configs) == gen.total_samples == 5
    assert [(c["lr"], c["g"], c["opt"]["m"]) for c in configs[:2]] == [(0.5, 1, 0.25), (0.5, 2, 0.25)]
    assert configs[2]["lr"] == 0.7 and configs[2]["g"] == 9 and configs[2]["opt"]["n"] == 5
    assert suggestions[0].evaluated_params["lr"] == 0.5
    with pytest.raises(ValueError, match="points_to_evaluate: the key opt/zz is not in the param_space"):
        BasicVariantGenerator(points_to_evaluate=[{"opt": {"zz": 1}}]).set_search_properties(None, None, space)
    with pytest.raises(ValueError, match="list of dicts"):
        BasicVariantGenerator(points_to_evaluate={"lr": 1})


def test_a_seed_repeats_the_search_and_max_concurrent_holds_trials_back():
    space = {"x": s.uniform(0, 1), "y": s.randint(0, 1000)}
    assert run_all(space, num_samples=5, random_state=42)[0] == run_all(space, num_samples=5, random_state=42)[0]
    assert run_all(space, num_samples=5, random_state=42)[0] != run_all(space, num_samples=5, random_state=43)[0]
    gen = BasicVariantGenerator(max_concurrent=2, random_state=0)
    gen.set_search_properties("loss", "min", space, num_samples=3)
    assert isinstance(gen.suggest("a"), dict) and isinstance(gen.suggest("b"), dict)
    assert gen.suggest("c") is None
    gen.on_trial_complete("a", {"loss": 1})
    assert isinstance(gen.suggest("c"), dict) and gen.suggest("d") is None
    gen.on_trial_complete("b")
    assert gen.suggest("d") == FINISHED


def test_restore_gives_the_remaining_configs_of_the_first_run(tmp_path):
    space = {"x": s.uniform(0, 1), "g": grid_search([1, 2, 3])}
    whole, _, _ = run_all(space, num_samples=2, random_state=5)
    gen = BasicVariantGenerator(random_state=5)
    gen.set_search_properties("loss", "min", space, num_samples=2)
    first = [gen.suggest(f"t{i}") for i in range(2)]
    gen.save_to_dir(str(tmp_path))
    restored = BasicVariantGenerator(random_state=5)
    assert restored.has_checkpoint(str(tmp_path))
    restored.restore_from_dir(str(tmp_path))
    restored.set_search_properties("loss", "min", space, num_samples=2)
    rest = []
    while (config := restored.suggest(f"r{len(rest)}")) != FINISHED:
        rest.append(config)
    assert first + rest == whole
    assert restored.suggestion("t1").index == 1


def test_num_samples_minus_one_runs_until_stopped_and_bad_values_are_refused():
    gen = BasicVariantGenerator(random_state=0)
    gen.set_search_properties(None, None, {"x": s.uniform(0, 1)}, num_samples=-1)
    assert gen.total_samples is None
    assert all(isinstance(gen.suggest(f"t{i}"), dict) for i in range(50))
    with pytest.raises(ValueError, match="num_samples"):
        gen.set_search_properties(None, None, {}, num_samples=0)
    with pytest.raises(ValueError, match="mode must be 'min' or 'max', got 'maximize'"):
        gen.set_search_properties("acc", "maximize", {})
    with pytest.raises(RuntimeError, match="set_search_properties"):
        BasicVariantGenerator().suggest("t")
