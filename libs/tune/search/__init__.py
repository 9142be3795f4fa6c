"""juno.tune.search: search spaces and search algorithms (Ray Tune's ``ray.tune.search``)."""
from juno.tune.search.basic_variant import BasicVariantGenerator
from juno.tune.search.concurrency_limiter import ConcurrencyLimiter
from juno.tune.search.repeater import Repeater
from juno.tune.search.sample import (
    Categorical, Domain, Float, Function, Integer, choice, grid_search, lograndint, loguniform, qlograndint,
    qloguniform, qrandint, qrandn, quniform, randint, randn, sample_from, uniform,
)
from juno.tune.search.search_algorithm import SearchAlgorithm, SearchGenerator, Suggestion, create_search_algorithm
from juno.tune.search.searcher import Searcher

__all__ = [
    "BasicVariantGenerator", "ConcurrencyLimiter", "Repeater", "Searcher", "SearchAlgorithm", "SearchGenerator",
    "Suggestion", "create_search_algorithm",
    "Domain", "Float", "Integer", "Categorical", "Function",
    "uniform", "quniform", "loguniform", "qloguniform", "randn", "qrandn", "randint", "qrandint", "lograndint",
    "qlograndint", "choice", "sample_from", "grid_search",
]
