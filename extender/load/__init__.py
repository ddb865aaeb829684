"""Measured node load: metric sources refreshed in the background, and in-flight placements.

One module per source (``prometheus``, ``metrics_server``, ``node_annotations``), the
refresher that runs them off the request path, the bind history in-flight accounting
reads, and :class:`~extender.load.view.ClusterLoad`, the
:class:`~extender.measured.LoadView` the rules see.
"""
