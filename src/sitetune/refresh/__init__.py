"""Keep a store up to date with its site: ``sitetune refresh``, run by hand, a timer or ``serve --refresh-every``.

- :func:`run_refresh` re-crawls (conditional requests, sitemaps), rebuilds the corpus and re-indexes with the
  current model, embedding only changed sections; a failure leaves the served generation as it was.
- :mod:`sitetune.refresh.pages` compares the new corpus with the previous one page by page.
- :mod:`sitetune.refresh.drift` measures how far the corpus moved from the model's training corpus.

Every attempt is recorded in the store's ``refresh.json`` (:mod:`sitetune.index.refreshstate`), which a
running server reports in ``/healthz`` and ``/metrics``.
"""

from __future__ import annotations

from sitetune.refresh.run import DEFAULT_STALE_THRESHOLD, RefreshError, RefreshOptions, RefreshReport, run_refresh

__all__ = ["DEFAULT_STALE_THRESHOLD", "RefreshError", "RefreshOptions", "RefreshReport", "run_refresh"]
