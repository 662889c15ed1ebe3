"""``GET /widget.js``: the search box any page can embed with one script tag (``static/widget.js``).

A page on another origin loads it with ``<script src="…/widget.js" data-endpoint="…" defer>``. A classic
script needs no CORS, but the security headers every response gets include
``Cross-Origin-Resource-Policy: same-origin``, which would make the browser refuse the script to any other
site; this response says ``cross-origin`` instead. The widget's calls to ``POST /answer`` are CORS requests,
allowed only for the origins ``serve --allow-origin`` lists
(:class:`sitetune.serve.middleware.ListedOriginsMiddleware`).
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoint signature at run time.

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse

WIDGET_FILE = Path(__file__).resolve().parent / "static" / "widget.js"


def add_widget_endpoint(app: FastAPI) -> None:
    """Add ``GET /widget.js`` to ``app``: the widget's script, loadable from any page's ``<script>`` tag."""

    @app.get("/widget.js", include_in_schema=False)
    def widget() -> FileResponse:
        return FileResponse(
            WIDGET_FILE,
            media_type="text/javascript; charset=utf-8",
            # Revalidated on each load (ETag), so a new version reaches embedding pages at once.
            headers={"Cache-Control": "no-cache", "Cross-Origin-Resource-Policy": "cross-origin"},
        )
