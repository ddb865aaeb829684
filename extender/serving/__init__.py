"""Serving HTTP: the gunicorn worker that receives requests whole, TLS, client limits.

- :mod:`.worker`: the worker class (``extender.serving.worker.BufferingWorker``);
- :mod:`.connection`: a client connection and the limits it is held to;
- :mod:`.inbox` and :mod:`.framing`: receiving a request and finding where it ends;
- :mod:`.received`: a received request as gunicorn's parser reads it;
- :mod:`.tls`: the TLS context, reloaded when its files change;
- :mod:`.replies`, :mod:`.notices`: the worker's own JSON refusals and rate-limited log lines.
"""
