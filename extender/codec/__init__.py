"""The codecs: the only package that knows JSON.

- :mod:`~extender.codec.kube_scheduler` and :mod:`~extender.codec.kube_scheduler_replies`:
  kube-scheduler's extender protocol (requests in, replies out), what the HTTP verbs speak;
- :mod:`~extender.codec.kube_api`: the API server's lists, watch events, Status errors and
  Bindings, what the caches and the binder speak;
- :mod:`~extender.codec.objects`: the Pod and Node objects both embed, decoded into views;
- :mod:`~extender.codec.common`: :class:`WireError` and typed decoding with located messages.
"""
