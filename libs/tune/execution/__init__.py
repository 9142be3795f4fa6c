"""The experiment loop on the driver."""
