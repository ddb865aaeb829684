"""Recent decisions for the status page, and the one-line summary of a decision (the pod's
Event, the page's list). Knows nothing of HTTP or the Kubernetes API."""
