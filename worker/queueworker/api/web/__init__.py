"""The web view of ``queueworker api`` (docs/api.md, "Web view"): a static page at ``/ui/``
and the one event stream it reads, ``/ui/stream`` (routes.py)."""

from queueworker.api.web.routes import mount, router

__all__ = ["mount", "router"]
