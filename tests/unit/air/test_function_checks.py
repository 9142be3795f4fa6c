"""check_function_shippable: a train loop that cannot reach the workers is refused at fit(), naming the culprit.

The functions under test are made inside factories, so cloudpickle pickles them by value (with
what they capture), as it does a notebook's functions.
"""
from __future__ import annotations

import functools
import socket
import tempfile
import threading
import time

import numpy as np
import pytest

from juno.air.validation import DEFAULT_MAX_FUNCTION_BYTES, check_function_shippable, check_loop_signature, pickled_size

GLOBAL_LOCK = threading.Lock()
GLOBAL_WEIGHTS = np.ones(3 * (1 << 20) // 8)  # 3 MiB


def _closure_over(value):
    def train_loop(config):
        return value, config
    return train_loop


def _reads_global_lock():
    def train_loop(config):
        with GLOBAL_LOCK:
            return config
    return train_loop


def test_an_ordinary_closure_passes_and_returns_its_size():
    lr = 0.01

    def train_loop(config):
        return lr * config["x"]

    size = check_function_shippable(train_loop)
    assert 0 < size < 10_000


def test_a_captured_lock_is_named_with_its_type_and_to_create_it_inside():
    with pytest.raises(TypeError) as info:
        check_function_shippable(_closure_over(threading.Lock()))
    text = str(info.value)
    assert "train_loop_per_worker cannot be pickled" in text
    assert "the captured variable 'value'" in text and "_thread.lock" in text
    assert "inside train_loop_per_worker" in text
    assert isinstance(info.value.__cause__, TypeError)  # the pickling error, chained


def test_a_global_read_inside_a_nested_lambda_is_found():
    def make():
        def train_loop(config):
            return list(map(lambda x: GLOBAL_LOCK.locked() or x, config))
        return train_loop

    with pytest.raises(TypeError, match="the global 'GLOBAL_LOCK'"):
        check_function_shippable(make())
    with pytest.raises(TypeError, match="the global 'GLOBAL_LOCK'"):
        check_function_shippable(_reads_global_lock())


def test_a_helper_function_that_holds_the_culprit_is_named_on_the_way():
    sock = socket.socket()
    try:
        def send(x):
            return sock.send(x)

        def train_loop(config):
            return send(config)

        with pytest.raises(TypeError) as info:
            check_function_shippable(train_loop, what="trainable", hint="param_space")
        text = str(info.value)
        assert "trainable cannot be pickled" in text
        assert "the captured variable 'send', which refers to the captured variable 'sock'" in text
        assert "socket" in text and "create or open it inside trainable" in text
    finally:
        sock.close()


def test_an_open_file_and_an_unpicklable_default_argument_are_named():
    with tempfile.TemporaryFile() as f:
        with pytest.raises(TypeError, match="the captured variable 'value' .*BufferedRandom.*open it inside"):
            check_function_shippable(_closure_over(f))

        def train_loop(config, log=f):
            return log

        with pytest.raises(TypeError, match=r"the default value 0 of train_loop\(\)"):
            check_function_shippable(train_loop)


def test_a_plain_unpicklable_value_says_to_pass_settings_through_the_config():
    class NoPickle:
        def __reduce__(self):
            raise RuntimeError("not today")

    with pytest.raises(TypeError) as info:
        check_function_shippable(_closure_over(NoPickle()), hint="train_loop_config")
    text = str(info.value)
    assert "NoPickle" in text and "RuntimeError: not today" in text
    assert "pass picklable settings through train_loop_config" in text


def test_partials_and_bound_methods_are_walked():
    lock = threading.Lock()

    def loop(config, guard):
        return config, guard

    with pytest.raises(TypeError, match="the partial's argument 'guard'"):
        check_function_shippable(functools.partial(loop, guard=lock))

    class Trainer:
        def __init__(self):
            self.lock = threading.Lock()

        def train(self, config):
            return config

    with pytest.raises(TypeError, match="the bound object"):
        check_function_shippable(Trainer().train)


def test_not_a_function_is_a_type_error():
    with pytest.raises(TypeError, match="train_loop_per_worker must be a function, got int: 3"):
        check_function_shippable(3)


def test_too_large_names_the_biggest_captures_and_the_put_fix():
    big = np.zeros(5 * (1 << 20) // 8)  # 5 MiB
    small = list(range(10))

    def train_loop(config):
        return big.sum() + GLOBAL_WEIGHTS.sum() + len(small)

    with pytest.raises(ValueError) as info:
        check_function_shippable(train_loop, max_bytes=4 * (1 << 20))
    text = str(info.value)
    assert "train_loop_per_worker is 8.0 MiB pickled (the limit is 4.0 MiB)" in text
    assert "the captured variable 'big' (numpy.ndarray, 5.0 MiB), the global 'GLOBAL_WEIGHTS'" in text
    assert "'small'" not in text  # a few bytes: not a culprit worth naming
    assert "juno.put(value)" in text and "train_loop_config" in text and "tune.with_parameters" in text
    assert check_function_shippable(train_loop) == pickled_size(train_loop)  # the default limit is 16 MiB
    assert DEFAULT_MAX_FUNCTION_BYTES == 16 * (1 << 20)


def test_a_torch_tensor_is_measured_without_pickling_its_bytes():
    torch = pytest.importorskip("torch")
    weights = torch.ones(1 << 20)  # 4 MiB of float32

    def train_loop(config):
        return weights.sum()

    assert 4 * (1 << 20) <= pickled_size(train_loop) < 4 * (1 << 20) + 20_000
    with pytest.raises(ValueError, match=r"the captured variable 'weights' \(torch.Tensor, 4.0 MiB\)"):
        check_function_shippable(train_loop, max_bytes=1 << 20)


def test_the_check_is_fast_for_a_closure_and_for_a_100_mb_capture():
    """It runs at every fit(): an ordinary closure costs well under a millisecond, and a captured 100 MB
    array is measured without copying it (measured here: ~0.1 ms and ~1 ms on a shared 2-core box)."""
    lr = 0.1

    def small(config):
        return lr * config["x"]

    big_array = np.ones(100_000_000 // 8)

    def big(config):
        return big_array.sum()

    check_function_shippable(small)
    start = time.perf_counter()
    for _ in range(20):
        check_function_shippable(small)
    assert (time.perf_counter() - start) / 20 < 0.02
    start = time.perf_counter()
    with pytest.raises(ValueError, match="'big_array'"):
        check_function_shippable(big)
    assert time.perf_counter() - start < 0.5  # a copy of 100 MB alone would take tens of ms


def test_the_loop_takes_no_argument_or_the_config():
    assert check_loop_signature(lambda: None) == 0
    assert check_loop_signature(lambda config: None) == 1
    assert check_loop_signature(lambda config=None, *, seed=0: None) == 1
    assert check_loop_signature(lambda *args: None) == 1
    assert check_loop_signature(print) == 1  # a builtin: nothing to read

    def train(config, model):
        return config, model

    with pytest.raises(ValueError, match=r"train_loop_per_worker must take no argument or one \(the "
                                         r"train_loop_config dict\), but it is train\(config, model\)"):
        check_loop_signature(train)
    with pytest.raises(ValueError, match=r"trainable must take .*the param_space dict.*def trainable\(config\)"):
        check_loop_signature(lambda *, config: None, what="trainable", hint="param_space")
