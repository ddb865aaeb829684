"""Kubernetes value formats the rules need: quantities, timestamps, durations, selectors."""
