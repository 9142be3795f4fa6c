"""Every sampler of juno.tune.search: ranges, distributions, seeds, and bad bounds."""
import numpy as np
import pytest

from juno.tune.search import sample as s

N = 4000


def draw(domain, seed=0, size=N):
    return np.asarray(domain.sample(size=size, random_state=seed))


def test_uniform_and_loguniform_ranges_and_shapes():
    values = draw(s.uniform(2, 5))
    assert values.min() >= 2 and values.max() <= 5 and abs(values.mean() - 3.5) < 0.1
    logs = np.log10(draw(s.loguniform(1e-4, 1e-1)))
    assert logs.min() >= -4 and logs.max() <= -1 and abs(logs.mean() + 2.5) < 0.1  # uniform in log space
    base2 = np.log2(draw(s.loguniform(1, 1024, base=2)))
    assert abs(base2.mean() - 5) < 0.2


def test_quantized_floats_are_multiples_of_q_within_bounds():
    values = draw(s.quniform(0, 1, 0.1))
    assert set(np.round(values, 10)) <= {round(0.1 * k, 10) for k in range(11)}
    assert all(isinstance(v, float) and v == round(v, 10) for v in s.quniform(0, 1, 0.1).sample(size=20))
    qlog = draw(s.qloguniform(1e-4, 1e-1, 5e-5))
    assert qlog.min() >= 1e-4 and qlog.max() <= 1e-1 + 1e-12
    assert np.allclose(np.round(qlog / 5e-5), qlog / 5e-5)


def test_normal_samplers():
    values = draw(s.randn(5, 2))
    assert abs(values.mean() - 5) < 0.15 and abs(values.std() - 2) < 0.15
    q = draw(s.qrandn(0, 3, 0.5))
    assert np.allclose(q * 2, np.round(q * 2))


def test_integer_samplers_bounds_follow_ray():
    values = draw(s.randint(0, 5))
    assert set(values.tolist()) == {0, 1, 2, 3, 4}  # upper exclusive
    assert all(type(v) is int for v in s.randint(0, 5).sample(size=10))
    assert set(draw(s.qrandint(0, 10, 5)).tolist()) == {0, 5, 10}  # upper inclusive
    assert set(draw(s.qrandint(1, 4)).tolist()) == {1, 2, 3, 4}
    logs = draw(s.lograndint(1, 1000))
    assert logs.min() >= 1 and logs.max() <= 999 and np.median(logs) < 100  # most mass at small values
    qlog = draw(s.qlograndint(10, 1000, 10))
    assert qlog.min() >= 10 and qlog.max() <= 1000 and set(qlog % 10) == {0}


def test_choice_keeps_the_category_objects():
    categories = ["adam", [1, 2], {"k": 1}]
    values = s.choice(categories).sample(size=300, random_state=1)
    assert {repr(v) for v in values} == {repr(c) for c in categories}
    assert s.choice(categories).sample(random_state=1) is not None


def test_a_seed_makes_every_sampler_deterministic():
    domains = [s.uniform(0, 1), s.quniform(0, 1, 0.25), s.loguniform(1e-3, 1), s.qloguniform(1e-3, 1, 1e-3),
               s.randn(), s.qrandn(0, 1, 0.1), s.randint(0, 100), s.qrandint(0, 100, 3), s.lograndint(1, 100),
               s.qlograndint(1, 100, 2), s.choice(list("abcdef"))]
    for domain in domains:
        assert domain.sample(size=5, random_state=7) == domain.sample(size=5, random_state=7), domain
        assert domain.sample(size=5, random_state=np.random.default_rng(3)) == \
            domain.sample(size=5, random_state=np.random.default_rng(3))
    np.random.seed(11)
    first = s.uniform(0, 1).sample(size=3)
    np.random.seed(11)
    assert s.uniform(0, 1).sample(size=3) == first  # no seed: numpy's global generator, as Ray


def test_sample_from_gets_the_spec_or_nothing():
    assert s.sample_from(lambda: 3).sample() == 3
    assert s.sample_from(lambda spec: spec["x"] + 1).sample({"x": 1}) == 2
    with pytest.raises(ValueError, match="callable"):
        s.sample_from(3)


@pytest.mark.parametrize("make, words", [
    (lambda: s.uniform(5, 1), "lower=5.0, upper=1.0"),
    (lambda: s.loguniform(0, 1), "lower > 0"),
    (lambda: s.randint(3, 3), "lower=3, upper=3"),
    (lambda: s.lograndint(0, 10), "lower >= 1"),
    (lambda: s.quniform(0.05, 1, 0.1), "lower bound 0.05 is not a multiple"),
    (lambda: s.qrandint(1, 4, 10), "no multiple of q=10"),
    (lambda: s.randn(0, 0), "sd=0"),
    (lambda: s.choice([]), "empty"),
    (lambda: s.choice("abc"), "list or tuple"),
    (lambda: s.grid_search(3), "list of values"),
    (lambda: s.uniform("a", 1), "lower must be a number"),
])
def test_bad_bounds_name_them(make, words):
    with pytest.raises(ValueError, match=words):
        make()


def test_domains_say_what_is_valid():
    assert s.uniform(0, 1).is_valid(0.5) and not s.uniform(0, 1).is_valid(2)
    assert s.choice([1, 2]).is_valid(2) and not s.choice([1, 2]).is_valid(3)
    assert "(0.0, 1.0)" in repr(s.uniform(0, 1))
