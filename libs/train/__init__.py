"""Juno Train: Ray Train's API on Juno (the lead replaces this placeholder when merging)."""
