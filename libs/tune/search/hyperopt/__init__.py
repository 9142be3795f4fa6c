"""HyperOptSearch: Tune's adapter to hyperopt's TPE (``pip install "juno[tune-hyperopt]"``)."""
from juno.tune.search.hyperopt.hyperopt_search import HyperOptSearch

__all__ = ["HyperOptSearch"]
