"""Where the served search's first result goes wrong: another section of an answering page, or another page.

For every answerable question (one with a section judged to answer, grade 2) of each site's development and
test halves, the served ranking (``sitetune.evaluation.served.served_ranking``, what ``sitetune search``
returns) is classed by its first result: it answers; it is another section of a page that holds an answer;
or it is on a page that holds none. The two kinds of miss ask for different remedies (ranking sections
within a page, or choosing the page), and the rank of the first answering section says how deep a second
stage would have to look. Writes ``benchmarks/results/first_hit_misses.md``.

Usage:
    python benchmarks/first_hit_misses.py --site cbs=runs/quality/cbs/stores/cbs-default:cbs,cbs-v2 \\
        --site stirling=runs/quality/stirling/stores/stir-default:stirling
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections import Counter
from pathlib import Path

from fusion import Site, open_site
from machine import describe_machine, write_fragment

from sitetune.evaluation.served import served_ranking

RESULT = Path(__file__).resolve().parent / "results" / "first_hit_misses.md"
DEPTH = 20
KINDS = ("answers", "answering page", "other page")
SAME_TITLE = "other page, same section title"
SIGNPOST = "signpost first"
TESTIMONIAL = "testimonial first"
DEPTHS = ("at 2–5", "at 6–20", f"not in the top {DEPTH}")


def first_hit_kind(ranking: list[str], answering: set[str], pages_of: dict[str, set[str]]) -> tuple[str, str]:
    """(kind of the first result, where the first answering section is) for one ranking; ``pages_of`` maps a
    chunk to every page it appears on."""
    if ranking and ranking[0] in answering:
        return KINDS[0], ""
    position = next((i for i, chunk_id in enumerate(ranking) if chunk_id in answering), None)
    depth = DEPTHS[2] if position is None else DEPTHS[0] if position < 5 else DEPTHS[1]
    answering_pages = set().union(*(pages_of.get(chunk_id, set()) for chunk_id in answering))
    on_answering_page = bool(ranking) and bool(pages_of.get(ranking[0], set()) & answering_pages)
    return (KINDS[1] if on_answering_page else KINDS[2]), depth


def half_counts(
    site: Site, half: str, pages_of: dict[str, set[str]], titles_of: dict[str, set[str]]
) -> tuple[int, Counter[tuple[str, str]]]:
    """Answerable questions of ``half`` and the count of each (kind, depth); ``(SAME_TITLE, "")`` counts the
    "other page" misses whose first result has the title of an answering section (a sister page's section),
    ``(SIGNPOST, "")`` the misses whose first result is a signpost (probability ≥ 0.5, ``sitetune.sectionkind``),
    ``(TESTIMONIAL, "")`` those whose first result is flagged as a testimonial.
    ``pages_of`` and ``titles_of`` map a chunk to the pages and section titles it appears under."""
    counts: Counter[tuple[str, str]] = Counter()
    total = 0
    for query in site.dev if half == "dev" else site.test:
        answering = {chunk_id for chunk_id, grade in query.relevant.items() if grade >= 2}
        if not answering:
            continue
        total += 1
        ranking = served_ranking(site.searcher, query, site.vectors[query.id], depth=DEPTH)
        kind = first_hit_kind(ranking, answering, pages_of)
        counts[kind] += 1
        first_row = site.searcher.reader.row_of[ranking[0]] if ranking else None
        if kind[0] != KINDS[0] and first_row is not None and site.searcher.signals.signpost[first_row] >= 0.5:
            counts[SIGNPOST, ""] += 1
        if kind[0] != KINDS[0] and first_row is not None and site.searcher.signals.testimonial[first_row]:
            counts[TESTIMONIAL, ""] += 1
        if kind[0] == KINDS[2] and titles_of[ranking[0]] & set().union(*(titles_of.get(c, set()) for c in answering)):
            counts[SAME_TITLE, ""] += 1
    return total, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", action="append", required=True, help="NAME=STORE:set1[,set2]")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    miss_columns = [f"{kind}, answer {depth}" for kind in KINDS[1:] for depth in DEPTHS]
    lines = [
        "## Where the served search's first result goes wrong (development and test halves)",
        "",
        "- Command: `python benchmarks/first_hit_misses.py " + " ".join("--site " + s for s in args.site) + "`",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {describe_machine()}",
        "- Answerable questions (a section judged to answer) by their served first result: it answers; it is"
        " another section of a page that holds an answer (answering page); it is on a page holding none (other"
        f" page); with the rank of the first answering section in the served top {DEPTH}. The third-to-last column"
        " counts the other-page misses whose first result bears the title of an answering section; the last two,"
        " the misses whose first result is a signpost (signpost probability ≥ 0.5) or a testimonial (both"
        " computed at index time).",
        "",
        "| site | half (answerable) | first result answers | " + " | ".join(miss_columns)
        + f" | {SAME_TITLE} | {SIGNPOST} | {TESTIMONIAL} |",
        "|---|---|---:|" + "---:|" * (len(miss_columns) + 3),
    ]
    for spec in args.site:
        site = open_site(spec)
        chunks = site.searcher.reader.chunks
        pages_of = {c.chunk_id: {o.page_name for o in c.occurrences} for c in chunks}
        titles_of = {c.chunk_id: {o.section_title for o in c.occurrences} for c in chunks}
        for half in ("dev", "test"):
            total, counts = half_counts(site, half, pages_of, titles_of)
            cells = [counts[KINDS[0], ""]] + [counts[kind, depth] for kind in KINDS[1:] for depth in DEPTHS]
            cells += [counts[SAME_TITLE, ""], counts[SIGNPOST, ""], counts[TESTIMONIAL, ""]]
            lines.append(f"| {site.name} | {half} ({total}) | " + " | ".join(str(c) for c in cells) + " |")
            print(lines[-1], flush=True)
        site.searcher.close()
    write_fragment(args.out, lines)


if __name__ == "__main__":
    main()
