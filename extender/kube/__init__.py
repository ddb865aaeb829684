"""The cluster-state layer: a small Kubernetes API client, watch caches, and the binder."""
