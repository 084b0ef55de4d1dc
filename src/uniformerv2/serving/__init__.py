"""Serving a model over HTTP (``uniformerv2 serve``): a FastAPI app with dynamic batching and a web page.

Needs the ``serve`` extra (``pip install 'uniformerv2[serve]'``: fastapi, uvicorn, python-multipart,
prometheus_client). :func:`create_app` builds the app; :class:`DynamicBatcher` is usable on its own.
"""

from .app import ServeConfig, create_app
from .batcher import DynamicBatcher

__all__ = ["ServeConfig", "create_app", "DynamicBatcher"]
