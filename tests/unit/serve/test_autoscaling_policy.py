"""The autoscaling decision with a fake clock: the desired count, smoothing, the clamp, the look-back
average, the upscale and downscale delays, scaling to and from zero, and config checks."""
from types import SimpleNamespace

import pytest

from juno.serve.autoscaling_policy import AutoscalingPolicy


def policy(**overrides):
    cfg = {"min_replicas": 1, "max_replicas": 10, "target_ongoing_requests": 2, "upscale_delay_s": 0,
           "downscale_delay_s": 0, "look_back_period_s": 1}
    cfg.update(overrides)
    return AutoscalingPolicy.from_config(cfg)


def test_ray_defaults_from_an_empty_config():
    p = AutoscalingPolicy.from_config({})
    assert (p.min_replicas, p.max_replicas, p.target_ongoing_requests) == (1, 1, 2.0)
    assert (p.upscale_delay_s, p.downscale_delay_s, p.look_back_period_s) == (30.0, 600.0, 30.0)
    assert p.initial_target == 1


def test_reads_an_object_by_field_name():
    cfg = SimpleNamespace(min_replicas=2, max_replicas=5, initial_replicas=3, target_ongoing_requests=4,
                          metrics_interval_s=10)
    p = AutoscalingPolicy.from_config(cfg)
    assert (p.min_replicas, p.max_replicas, p.initial_target, p.target_ongoing_requests) == (2, 5, 3, 4)


def test_desired_is_ceil_of_load_over_target_clamped():
    p = policy()
    assert p.decide(0, 1, total_ongoing=7, running_replicas=1) == 4  # ceil(7 / 2)
    p = policy()
    assert p.decide(0, 1, total_ongoing=100, running_replicas=1) == 10  # max_replicas
    p = policy(min_replicas=2)
    assert p.decide(0, 5, total_ongoing=0, running_replicas=5) == 2  # min_replicas


def test_smoothing_factors_scale_the_step():
    p = policy(upscaling_factor=0.5)
    assert p.decide(0, 2, total_ongoing=20, running_replicas=2) == 6  # needs 10: half the way from 2
    p = policy(downscaling_factor=0.5)
    assert p.decide(0, 8, total_ongoing=4, running_replicas=8) == 5  # needs 2: half the way from 8
    p = policy(smoothing_factor=0.1)
    assert p.decide(0, 8, total_ongoing=14, running_replicas=8) == 7  # a small factor still moves one
    assert p.decide(0, 1, total_ongoing=4, running_replicas=1) == 2
    p = policy(upscale_smoothing_factor=2.0)  # the older name counts too
    assert p.decide(0, 2, total_ongoing=8, running_replicas=2) == 6


def test_average_over_the_look_back_period():
    p = policy(look_back_period_s=10)
    assert p.decide(0, 1, total_ongoing=8, running_replicas=1) == 4
    assert p.decide(1, 4, total_ongoing=0, running_replicas=4) == 2  # average of 8 and 0
    assert p.decide(20, 2, total_ongoing=0, running_replicas=2) == 1  # the 8 is older than 10 s


def test_upscale_waits_for_the_upscale_delay_of_continuous_want():
    p = policy(upscale_delay_s=30)
    assert p.decide(0, 1, 10, 1) == 1
    assert p.decide(20, 1, 10, 1) == 1
    assert p.decide(30, 1, 10, 1) == 5
    p = policy(upscale_delay_s=30)
    assert p.decide(0, 1, 10, 1) == 1
    assert p.decide(20, 1, 2, 1) == 1  # load fell: one replica is enough, the want is reset
    assert p.decide(35, 1, 10, 1) == 1  # the clock starts again
    assert p.decide(65, 1, 10, 1) == 5


def test_downscale_waits_for_the_downscale_delay():
    p = policy(downscale_delay_s=600)
    assert p.decide(0, 4, 0, 4) == 4
    assert p.decide(599, 4, 0, 4) == 4
    assert p.decide(600, 4, 0, 4) == 1


def test_zero_only_when_min_replicas_is_zero_and_after_its_delay():
    assert policy(min_replicas=1).decide(0, 1, 0, 1) == 1
    p = policy(min_replicas=0, downscale_delay_s=10, downscale_to_zero_delay_s=100)
    assert p.decide(0, 3, 0, 3) == 3
    assert p.decide(10, 3, 0, 3) == 1  # to one replica first, after downscale_delay_s
    assert p.decide(20, 1, 0, 1) == 1
    assert p.decide(120, 1, 0, 1) == 0  # then to zero after downscale_to_zero_delay_s


def test_scale_up_from_zero():
    p = policy(min_replicas=0)
    assert p.decide(0, 0, 3, 0) == 2
    assert policy(min_replicas=0).decide(0, 0, 0, 0) == 0


def test_a_target_outside_the_bounds_comes_back_in():
    assert policy(max_replicas=3).decide(0, 6, 20, 6) == 3


@pytest.mark.parametrize("cfg, match", [
    ({"min_replicas": -1}, "min_replicas"),
    ({"max_replicas": 0}, "max_replicas"),
    ({"min_replicas": 5, "max_replicas": 2}, "must not exceed"),
    ({"min_replicas": 1, "max_replicas": 3, "initial_replicas": 7}, "initial_replicas"),
    ({"target_ongoing_requests": 0}, "target_ongoing_requests"),
    ({"upscale_delay_s": -1}, "upscale_delay_s"),
    ({"smoothing_factor": 0}, "smoothing_factor"),
    ({"downscaling_factor": -0.5}, "downscaling_factor"),
    ({"min_replicas": 1.5}, "integer"),
])
def test_bad_configs_name_the_field(cfg, match):
    with pytest.raises(ValueError, match=match):
        AutoscalingPolicy.from_config(cfg)


def test_a_config_of_the_wrong_type():
    with pytest.raises(TypeError, match="autoscaling_config"):
        AutoscalingPolicy.from_config(42)
