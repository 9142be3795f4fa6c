"""How trainables run in trials."""
