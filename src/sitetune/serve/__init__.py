"""The HTTP API and the web page (``sitetune serve``)."""

from __future__ import annotations

from sitetune.serve.app import STATIC_DIR, create_app
from sitetune.serve.runner import run_server

__all__ = ["STATIC_DIR", "create_app", "run_server"]
