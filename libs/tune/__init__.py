"""Juno Tune: Ray Tune's API on Juno (hyperparameter search, schedulers, searchers, a live trial table)."""
