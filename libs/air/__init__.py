"""Juno AIR: what Train, Tune and RL share (configs, checkpoints, results, the in-run session, checks)."""
