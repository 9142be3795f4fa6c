"""Juno Serve (CORE engineer owns this file; empty on the routing branch so its modules import)."""
