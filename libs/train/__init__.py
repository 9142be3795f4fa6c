"""Juno Train: Ray Train's API on Juno (the lead's __init__ replaces this placeholder at merge)."""
