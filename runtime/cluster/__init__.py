"""Cluster lifecycle on this machine: starting, finding and stopping a cluster's processes."""
