"""State and observability: task events, the state API's data and shapes, cluster status."""
