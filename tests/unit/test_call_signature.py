"""Remote calls are checked against the signature at ``.remote()``, with Python's messages."""
from __future__ import annotations

import pickle

import pytest

from juno.owner.call_signature import CallSignature, parameters_of, signature_of


def plain(a, b=1):
    pass


def keyword_only(a, *, k, opt=None):
    pass


def varargs(a, *rest, **extra):
    pass


def positional_only(a, /, b):
    pass


class Thing:
    def method(self, x, y=2):
        pass

    def star(*args):
        pass


@pytest.mark.parametrize("fn, args, kwargs", [
    (plain, (1,), {}),
    (plain, (1, 2), {}),
    (plain, (), {"a": 1, "b": 2}),
    (keyword_only, (1,), {"k": 2}),
    (keyword_only, (), {"a": 1, "k": 2, "opt": 3}),
    (varargs, (1, 2, 3, 4), {"anything": 5}),
    (positional_only, (1, 2), {}),
    (positional_only, (1,), {"b": 2}),
])
def test_calls_that_fit_pass(fn, args, kwargs):
    signature_of(fn).check(args, kwargs, fn.__name__)


@pytest.mark.parametrize("fn, args, kwargs, message", [
    (plain, (), {}, "plain() missing a required argument: 'a'"),
    (plain, (1, 2, 3), {}, "plain() too many positional arguments"),
    (plain, (1,), {"c": 3}, "plain() got an unexpected keyword argument 'c'"),
    (plain, (1,), {"a": 2}, "plain() multiple values for argument 'a'"),
    (keyword_only, (1,), {}, "keyword_only() missing a required argument: 'k'"),
    (keyword_only, (1, 2), {}, "keyword_only() too many positional arguments"),
    (varargs, (), {"x": 1}, "varargs() missing a required argument: 'a'"),
    (positional_only, (), {"a": 1, "b": 2}, "positional_only() "),
])
def test_wrong_calls_raise_type_error_naming_the_function(fn, args, kwargs, message):
    with pytest.raises(TypeError) as info:
        signature_of(fn).check(args, kwargs, fn.__name__)
    assert str(info.value).startswith(message)


def test_methods_skip_the_instance_and_name_the_class():
    sig = signature_of(Thing.method, skip_first=True)
    sig.check((1,), {}, "Thing", "method")
    with pytest.raises(TypeError, match=r"^Thing\.method\(\) too many positional arguments"):
        sig.check((1, 2, 3), {}, "Thing", "method")
    # def star(*args): the instance is one of args, and anything goes.
    assert parameters_of(Thing.star, skip_first=True) is None


def test_fast_path_range():
    assert (signature_of(plain).min_positional, signature_of(plain).max_positional) == (1, 2)
    assert signature_of(varargs).max_positional == float("inf")
    # A required keyword-only argument: every call is bound (one without kwargs is wrong).
    sig = signature_of(keyword_only)
    assert sig.min_positional > sig.max_positional


def test_signature_is_plain_data_and_pickles_to_the_shared_instance():
    def annotated(x: "SomeLocalType" = object()) -> None:  # noqa: F821
        pass

    params = parameters_of(annotated)
    assert params == (("x", 1, True),)  # no annotation, no default value travels
    sig = CallSignature.from_parameters(params)
    assert pickle.loads(pickle.dumps(sig)) is sig
    assert CallSignature.from_parameters([list(p) for p in params]) is sig


def test_classes_python_cannot_read_are_not_checked():
    class Mapping(dict):
        pass

    assert signature_of(Mapping) is None


def test_keyword_calls_are_bound_once_per_shape():
    sig = signature_of(plain)
    sig.check((1,), {"b": 2}, "plain")
    sig.check((3,), {"b": 4}, "plain")  # the same shape: remembered as fitting
    with pytest.raises(TypeError, match="unexpected keyword argument 'c'"):
        sig.check((1,), {"c": 2}, "plain")
    with pytest.raises(TypeError, match="multiple values for argument 'a'"):
        sig.check((1,), {"a": 2}, "plain")
    with pytest.raises(TypeError, match="multiple values for argument 'a'"):
        sig.check((1,), {"a": 2}, "plain")  # a failing shape is never remembered
