"""Juno Tune: hyperparameter search with Ray Tune's API (the lead replaces this file at merge)."""
