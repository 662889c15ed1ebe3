#!/bin/sh
# Re-crawl a site and re-index it into the store a running `sitetune serve` reads: the job behind
# sitetune-refresh.service (installed as /opt/sitetune/bin/sitetune-refresh, beside the sitetune command).
#
# `sitetune refresh` does it all (docs/refresh.md): the crawl keeps its page cache beside the corpus, so a
# re-crawl asks with conditional requests and reads the site's sitemaps; only new or changed sections are
# embedded, with the model the store was built with (never retrained unless SITETUNE_REFRESH_ARGS says
# --retrain-threshold); a new generation is published only once complete, and none when nothing changed.
# A running server switches to it by itself (it watches the store's CURRENT; SIGHUP makes it look at
# once). A failure at any step exits non-zero, leaves the served generation as it was, and is recorded in
# STORE/refresh.json, which the server's /healthz shows.
#
# Settings (environment):
#   SITETUNE_START_URL   the site's start URL (required)
#   SITETUNE_STORE       the store to re-index (default /var/lib/sitetune/store)
#   SITETUNE_MODEL       the model the store is built with (default /var/lib/sitetune/model; 'base' for
#                        the packaged all-MiniLM-L6-v2)
#   SITETUNE_WORK        where the corpus, its page cache and the crawl report go (default
#                        /var/lib/sitetune/crawl)
#   SITETUNE_PREFIX      crawl only under this URL prefix (default: the start URL's folder)
#   SITETUNE_MAX_PAGES   page limit (default 500)
#   SITETUNE_REFRESH_ARGS   more options for `sitetune refresh` (see its --help), split on spaces;
#                        SITETUNE_CRAWL_ARGS and SITETUNE_INDEX_ARGS are passed on too, for older settings files
#   SITETUNE             the sitetune command (default: the one beside this script, else on PATH)
set -eu

: "${SITETUNE_START_URL:?set SITETUNE_START_URL to the site's start URL (see /etc/sitetune/refresh.env)}"
store=${SITETUNE_STORE:-/var/lib/sitetune/store}
model=${SITETUNE_MODEL:-/var/lib/sitetune/model}
work=${SITETUNE_WORK:-/var/lib/sitetune/crawl}
if [ -z "${SITETUNE:-}" ]; then
    here=$(dirname -- "$0")
    if [ -x "$here/sitetune" ]; then SITETUNE=$here/sitetune; else SITETUNE=sitetune; fi
fi

mkdir -p -- "$work"
echo "sitetune-refresh: refreshing $store from $SITETUNE_START_URL (corpus $work/pages.jsonl, model $model)"
# shellcheck disable=SC2086  # the extra arguments are meant to split on spaces
"$SITETUNE" refresh "$SITETUNE_START_URL" --store "$store" --model "$model" --corpus "$work/pages.jsonl" \
    --max-pages "${SITETUNE_MAX_PAGES:-500}" ${SITETUNE_PREFIX:+--prefix "$SITETUNE_PREFIX"} --no-progress \
    ${SITETUNE_CRAWL_ARGS:-} ${SITETUNE_INDEX_ARGS:-} ${SITETUNE_REFRESH_ARGS:-}
echo "sitetune-refresh: done"
