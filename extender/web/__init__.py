"""The HTTP layer (Flask): translates between HTTP and the extender service."""

from extender.web.app import create_app

__all__ = ["create_app"]
