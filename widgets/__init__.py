"""Juno's notebook widgets: progress of futures and of library runs, the cluster, rich reprs, building blocks.

Every widget shows as a live ipywidgets view in a kernel and falls back to static HTML (saved notebooks,
nbconvert) and plain text (terminals). ipywidgets is imported only when a kernel displays a widget, so
``import juno`` stays fast and works without it.
"""
from juno.widgets.blocks import LineChart, ProgressBar, Table
from juno.widgets.cluster import ClusterWidget, cluster_snapshot, cluster_widget
from juno.widgets.progress import Progress, progress
from juno.widgets.run_view import RunDisplay, run_html, run_text

__all__ = ["progress", "Progress", "cluster_widget", "ClusterWidget", "cluster_snapshot",
           "ProgressBar", "Table", "LineChart",
           "RunDisplay", "run_text", "run_html"]
