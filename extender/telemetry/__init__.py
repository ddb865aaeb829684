"""Prometheus metrics (:mod:`extender.telemetry.metrics`) and the serving process's runtime
directory (:mod:`extender.telemetry.runtime`). A low layer: it imports nothing of the
extender, so the service, the caches, the metric sources and the web layer all feed it."""
