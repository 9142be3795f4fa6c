"""OptunaSearch: Tune's adapter to optuna (``pip install "juno[tune-optuna]"``)."""
from juno.tune.search.optuna.optuna_search import OptunaSearch

__all__ = ["OptunaSearch"]
