"""The owner side that every driver and worker runs: submission, references, owned values, recovery, serialization."""
