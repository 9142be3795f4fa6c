"""Juno Train: Ray Train's API on Juno (data-parallel training with worker actors in one placement group)."""
