"""Flask application factory."""

from __future__ import annotations

from flask import Flask
from werkzeug.exceptions import HTTPException

from extender.engine import Policy
from extender.policy import load_policy
from extender.service import ExtenderService, ServiceOptions
from extender.settings import Settings
from extender.web.routes import Readiness, handle_http_error, handle_unexpected, probes_blueprint, verbs_blueprint


def _always_ready() -> tuple[bool, str]:
    return True, "policy loaded"


def create_app(
    settings: Settings | None = None,
    *,
    policy: Policy | None = None,
    service: ExtenderService | None = None,
    readiness: Readiness | None = None,
) -> Flask:
    """Build the WSGI app.

    ``settings`` default to the environment (``EXTENDER_*``); the policy is loaded from
    ``settings.policy`` (the embedded default if unset) unless ``policy`` or a whole
    ``service`` is given. Raises :class:`~extender.policy.PolicyError` on an invalid policy.
    """
    settings = settings or Settings.from_env()
    if service is None:
        service = ExtenderService(
            policy or load_policy(settings.policy),
            options=ServiceOptions(unknown_nodes="pass" if settings.unknown_nodes == "pass" else "fail"),
        )
    app = Flask("extender")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["extender.service"] = service
    app.register_blueprint(verbs_blueprint(settings.normalised_prefix, settings.max_body_bytes))
    app.register_blueprint(probes_blueprint(readiness or _always_ready))
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)
    return app
