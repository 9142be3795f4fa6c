"""Search-space primitives: the Domain classes and Ray Tune's sampling functions.

A Domain says what values a parameter may take (``Float``, ``Integer``, ``Categorical``) and a
Sampler how to draw them (``Uniform``, ``LogUniform``, ``Normal``, ``Quantized``, ``Grid``).
``uniform(0, 1)`` is ``Float(0, 1).uniform()``; the searcher adapters read the same two objects
to build optuna's or hyperopt's distributions. Every draw takes ``random_state`` (an int seed, a
numpy ``Generator`` or ``RandomState``); without one it uses numpy's global generator, as Ray
does, so ``np.random.seed`` makes a sweep repeatable.
"""
from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Sequence

import numpy as np

__all__ = [
    "Domain", "Float", "Integer", "Categorical", "Function",
    "Sampler", "Uniform", "LogUniform", "Normal", "Quantized", "Grid",
    "uniform", "quniform", "loguniform", "qloguniform", "randn", "qrandn", "randint", "qrandint",
    "lograndint", "qlograndint", "choice", "sample_from", "grid_search",
]


class _Rng:
    """One face over numpy's two generator kinds (``Generator`` and the legacy ``RandomState``)."""

    def __init__(self, random_state=None):
        if isinstance(random_state, _Rng):
            random_state = random_state.generator
        if random_state is None:
            random_state = np.random.mtrand._rand  # numpy's global generator: honours np.random.seed
        elif isinstance(random_state, (int, np.integer)):
            random_state = np.random.default_rng(int(random_state))
        elif not isinstance(random_state, (np.random.Generator, np.random.RandomState)):
            raise TypeError(f"random_state must be None, an int seed, a numpy Generator or RandomState, "
                            f"not {type(random_state).__name__}")
        self.generator = random_state

    def uniform(self, low, high, size):
        return self.generator.uniform(low, high, size)

    def normal(self, mean, sd, size):
        return self.generator.normal(mean, sd, size)

    def integers(self, low, high, size):
        """Integers in [low, high)."""
        if isinstance(self.generator, np.random.Generator):
            return self.generator.integers(low, high, size)
        return self.generator.randint(low, high, size)


def as_rng(random_state=None) -> _Rng:
    """The generator every draw in juno.tune.search goes through."""
    return _Rng(random_state)


class Sampler:
    """How values are drawn from a Domain; ``draw`` returns ``size`` values, not yet cast."""

    def draw(self, domain: "Domain", rng: _Rng, size: int):
        raise NotImplementedError

    def __str__(self):
        return type(self).__name__


class Uniform(Sampler):
    def draw(self, domain, rng, size):
        if isinstance(domain, Categorical):
            return [domain.categories[i] for i in rng.integers(0, len(domain.categories), size)]
        if isinstance(domain, Integer):
            return rng.integers(domain.lower, domain.upper, size)
        return rng.uniform(domain.lower, domain.upper, size)


class LogUniform(Sampler):
    def __init__(self, base: float = 10):
        if not base > 0 or base == 1:
            raise ValueError(f"the base of a log-uniform distribution must be > 0 and != 1, got {base}")
        self.base = base

    def draw(self, domain, rng, size):
        log = math.log(self.base)
        values = self.base ** rng.uniform(math.log(domain.lower) / log, math.log(domain.upper) / log, size)
        if isinstance(domain, Integer):  # upper exclusive, as randint
            return np.clip(np.floor(values), domain.lower, domain.upper - 1)
        return np.clip(values, domain.lower, domain.upper)

    def __str__(self):
        return f"LogUniform(base={self.base})"


class Normal(Sampler):
    def __init__(self, mean: float = 0.0, sd: float = 1.0):
        if not sd > 0:
            raise ValueError(f"the standard deviation of a normal distribution must be > 0, got sd={sd}")
        self.mean, self.sd = mean, sd

    def draw(self, domain, rng, size):
        return rng.normal(self.mean, self.sd, size)

    def __str__(self):
        return f"Normal(mean={self.mean}, sd={self.sd})"


class Quantized(Sampler):
    """Rounds another sampler's values to multiples of ``q``; the quantized range is [lower, upper]
    inclusive for integers too (Ray's qrandint)."""

    def __init__(self, sampler: Sampler, q: float):
        if not q > 0:
            raise ValueError(f"the quantization step q must be > 0, got q={q}")
        self.sampler, self.q = sampler, q

    def get_sampler(self) -> Sampler:
        return self.sampler

    def bounds(self, domain) -> tuple[float, float]:
        """The smallest and largest multiples of q inside the domain."""
        low = math.ceil(domain.lower / self.q - 1e-9) * self.q if math.isfinite(domain.lower) else domain.lower
        high = math.floor(domain.upper / self.q + 1e-9) * self.q if math.isfinite(domain.upper) else domain.upper
        return low, high

    def draw(self, domain, rng, size):
        low, high = self.bounds(domain)
        if isinstance(domain, Integer) and isinstance(self.sampler, Uniform):
            steps = rng.integers(round(low / self.q), round(high / self.q) + 1, size)  # every multiple equally likely
            return steps * self.q
        inner = domain if not isinstance(domain, Integer) else Float(domain.lower, domain.upper)
        values = np.round(np.asarray(self.sampler.draw(inner, rng, size), dtype=float) / self.q) * self.q
        return np.clip(values, low, high)

    def __str__(self):
        return f"Quantized({self.sampler}, q={self.q})"


class Grid(Sampler):
    """Marks a Categorical as a grid axis: the variant generator expands it, nothing samples it."""

    def draw(self, domain, rng, size):
        raise RuntimeError("a grid_search axis is expanded by the variant generator, not sampled")


class Domain:
    """The values one parameter may take, with the sampler that draws them."""

    sampler: Sampler | None = None
    default_sampler_cls: type = Uniform

    def set_sampler(self, sampler: Sampler, allow_override: bool = False):
        if self.sampler is not None and not allow_override:
            raise ValueError(f"{self} already has a sampler ({self.sampler}); build a new domain instead")
        self.sampler = sampler

    def get_sampler(self) -> Sampler:
        if self.sampler is None:
            self.sampler = self.default_sampler_cls()
        return self.sampler

    def _with(self, sampler: Sampler) -> "Domain":
        new = self._copy()
        new.set_sampler(sampler, allow_override=True)
        return new

    def _copy(self) -> "Domain":
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def sample(self, config=None, size: int = 1, random_state=None):
        """One value (size=1) or a list of ``size`` values."""
        values = [self.cast(v) for v in self.get_sampler().draw(self, as_rng(random_state), size)]
        return values[0] if size == 1 else values

    def cast(self, value):
        return value

    def is_grid(self) -> bool:
        return isinstance(self.sampler, Grid)

    def is_function(self) -> bool:
        return False

    def is_valid(self, value) -> bool:
        raise NotImplementedError

    @property
    def domain_str(self) -> str:
        return "(unknown)"

    def __repr__(self):
        return f"{type(self).__name__}{self.domain_str} sampled by {self.get_sampler()}"


def _number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return value


class Float(Domain):
    def __init__(self, lower: float | None, upper: float | None):
        self.lower = float("-inf") if lower is None else float(_number("lower", lower))
        self.upper = float("inf") if upper is None else float(_number("upper", upper))

    def cast(self, value):
        return float(value)

    def _bounded(self, what: str):
        if not (math.isfinite(self.lower) and math.isfinite(self.upper)):
            raise ValueError(f"{what} needs finite bounds, got lower={self.lower}, upper={self.upper}")
        if self.lower > self.upper:
            raise ValueError(f"{what} needs lower <= upper, got lower={self.lower}, upper={self.upper}")

    def uniform(self) -> "Float":
        self._bounded("uniform")
        return self._with(Uniform())

    def loguniform(self, base: float = 10) -> "Float":
        self._bounded("loguniform")
        if not self.lower > 0:
            raise ValueError(f"loguniform needs lower > 0, got lower={self.lower}, upper={self.upper}")
        return self._with(LogUniform(base))

    def normal(self, mean: float = 0.0, sd: float = 1.0) -> "Float":
        return self._with(Normal(mean, sd))

    def quantized(self, q: float) -> "Float":
        for name, bound in (("lower", self.lower), ("upper", self.upper)):
            if math.isfinite(bound) and not math.isclose(bound / q, round(bound / q), abs_tol=1e-9):
                raise ValueError(f"the {name} bound {bound} is not a multiple of the quantization step q={q}")
        return self._with(Quantized(self.get_sampler(), q))

    def sample(self, config=None, size: int = 1, random_state=None):
        values = super().sample(config, size, random_state)
        if isinstance(self.sampler, Quantized):  # 0.30000000000000004 -> 0.3
            digits = max(0, -math.floor(math.log10(self.sampler.q))) + 10
            values = round(values, digits) if size == 1 else [round(v, digits) for v in values]
        return values

    def is_valid(self, value) -> bool:
        return self.lower <= value <= self.upper

    @property
    def domain_str(self) -> str:
        return f"({self.lower}, {self.upper})"


class Integer(Domain):
    """Integers in [lower, upper) when sampled uniformly; [lower, upper] once quantized (Ray's rule)."""

    def __init__(self, lower: int, upper: int):
        self.lower = int(_number("lower", lower))
        self.upper = int(_number("upper", upper))

    def cast(self, value):
        return int(value)

    def _bounded(self, what: str, low_min: float | None = None):
        if self.lower >= self.upper:
            raise ValueError(f"{what} needs lower < upper (upper is exclusive), got lower={self.lower}, "
                             f"upper={self.upper}")
        if low_min is not None and not self.lower >= low_min:
            raise ValueError(f"{what} needs lower >= {low_min}, got lower={self.lower}, upper={self.upper}")

    def uniform(self) -> "Integer":
        self._bounded("randint")
        return self._with(Uniform())

    def loguniform(self, base: float = 10) -> "Integer":
        self._bounded("lograndint", low_min=1)
        return self._with(LogUniform(base))

    def quantized(self, q: int) -> "Integer":
        if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or q < 1:
            raise ValueError(f"the quantization step of an integer must be an int >= 1, got q={q!r}")
        new = self._with(Quantized(self.get_sampler(), int(q)))
        low, high = new.sampler.bounds(new)
        if low > high:
            raise ValueError(f"no multiple of q={q} lies in [{self.lower}, {self.upper}]")
        return new

    def is_valid(self, value) -> bool:
        return self.lower <= value <= self.upper

    @property
    def domain_str(self) -> str:
        return f"({self.lower}, {self.upper})"


class Categorical(Domain):
    def __init__(self, categories: Sequence):
        if isinstance(categories, (str, bytes, dict)) or not isinstance(categories, Sequence):
            raise ValueError(f"categories must be a list or tuple of values, got {categories!r}")
        if len(categories) == 0:
            raise ValueError("categories must not be empty")
        self.categories = list(categories)

    def uniform(self) -> "Categorical":
        return self._with(Uniform())

    def grid(self) -> "Categorical":
        return self._with(Grid())

    def __len__(self):
        return len(self.categories)

    def __getitem__(self, i):
        return self.categories[i]

    def is_valid(self, value) -> bool:
        return value in self.categories

    @property
    def domain_str(self) -> str:
        return f"{self.categories}"


class Function(Domain):
    """A value computed by ``func(spec)`` (or ``func()``), where ``spec.config`` holds the other
    sampled values of the same trial."""

    def __init__(self, func: Callable):
        if not callable(func):
            raise ValueError(f"sample_from needs a callable, got {func!r}")
        self.func = func
        self.pass_config = _takes_an_argument(func)

    def sample(self, config=None, size: int = 1, random_state=None):
        values = [self.func(config) if self.pass_config else self.func() for _ in range(size)]
        return values[0] if size == 1 else values

    def is_function(self) -> bool:
        return True

    def is_valid(self, value) -> bool:
        return True

    @property
    def domain_str(self) -> str:
        return f"{getattr(self.func, '__qualname__', self.func)}"

    def __repr__(self):
        return f"sample_from({self.domain_str})"


def _takes_an_argument(func: Callable) -> bool:
    try:
        inspect.signature(func).bind(None)
        return True
    except TypeError:
        return False
    except ValueError:  # builtins without a signature: try the one-argument form
        return True


def uniform(lower: float, upper: float) -> Float:
    """A float uniformly in [lower, upper]."""
    return Float(lower, upper).uniform()


def quniform(lower: float, upper: float, q: float) -> Float:
    """A float uniformly in [lower, upper], rounded to a multiple of q."""
    return Float(lower, upper).uniform().quantized(q)


def loguniform(lower: float, upper: float, base: float = 10) -> Float:
    """A float in [lower, upper], uniform in log space."""
    return Float(lower, upper).loguniform(base)


def qloguniform(lower: float, upper: float, q: float, base: float = 10) -> Float:
    """loguniform, rounded to a multiple of q."""
    return Float(lower, upper).loguniform(base).quantized(q)


def randn(mean: float = 0.0, sd: float = 1.0) -> Float:
    """A normally distributed float."""
    return Float(None, None).normal(mean, sd)


def qrandn(mean: float, sd: float, q: float) -> Float:
    """randn rounded to a multiple of q."""
    return Float(None, None).normal(mean, sd).quantized(q)


def randint(lower: int, upper: int) -> Integer:
    """An integer uniformly in [lower, upper): upper is exclusive, as ``np.random.randint``."""
    return Integer(lower, upper).uniform()


def qrandint(lower: int, upper: int, q: int = 1) -> Integer:
    """A multiple of q uniformly in [lower, upper]: upper is inclusive here (Ray's rule)."""
    return Integer(lower, upper).uniform().quantized(q)


def lograndint(lower: int, upper: int, base: float = 10) -> Integer:
    """An integer in [lower, upper), uniform in log space."""
    return Integer(lower, upper).loguniform(base)


def qlograndint(lower: int, upper: int, q: int, base: float = 10) -> Integer:
    """A multiple of q in [lower, upper] (inclusive), uniform in log space."""
    return Integer(lower, upper).loguniform(base).quantized(q)


def choice(categories: Sequence) -> Categorical:
    """One of ``categories``, each equally likely."""
    return Categorical(categories).uniform()


def sample_from(func: Callable[..., Any]) -> Function:
    """A value computed per trial by ``func(spec)``; ``spec.config.x`` (or ``spec["config"]["x"]``)
    reads another sampled value of the same trial."""
    return Function(func)


def grid_search(values: Sequence) -> dict:
    """Every one of ``values``, one trial (per num_samples) each: ``{"grid_search": values}``."""
    if isinstance(values, (str, bytes, dict)) or not isinstance(values, Sequence):
        raise ValueError(f"grid_search needs a list of values, got {values!r}")
    return {"grid_search": list(values)}
