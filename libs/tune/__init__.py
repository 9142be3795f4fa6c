"""Juno Tune: hyperparameter search with Ray Tune's API (issue 15)."""
