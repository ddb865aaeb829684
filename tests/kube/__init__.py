"""Test doubles for the Kubernetes API: a fake kube-apiserver replaying recorded v1.24 traffic."""
