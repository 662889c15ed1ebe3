"""robots.txt parsers against RFC 9309: the standard library's ``urllib.robotparser`` and Protego.

Each case is a robots.txt, a URL path and what RFC 9309 decides for the crawler's user agent; the
script counts the cases each parser gets right and checks fractional ``Crawl-delay``. The crawler uses
the parser that gets them all right (``src/sitetune/crawl/robots.py``). Writes
``benchmarks/results/robots_parsers.md``.

Usage:
    .venv/bin/python benchmarks/robots_parsers.py
"""

from __future__ import annotations

import datetime as dt
import sys
from importlib.metadata import version
from pathlib import Path
from urllib.robotparser import RobotFileParser

from machine import describe_machine
from protego import Protego

from sitetune.config import CrawlConfig

REPO = Path(__file__).resolve().parents[1]
AGENT = CrawlConfig().user_agent
# (what, robots.txt, path, allowed by RFC 9309)
CASES = [
    ("`*` and `$`: `Disallow: /*.pdf$`", "User-agent: *\nDisallow: /*.pdf$\n", "/files/guide.pdf", False),
    ("`$` anchors the end (a query follows)", "User-agent: *\nDisallow: /*.pdf$\n", "/files/guide.pdf?x=1", True),
    ("`*` inside a path", "User-agent: *\nDisallow: /private*/\n", "/private-area/x", False),
    ("`*` before a query", "User-agent: *\nDisallow: /*?sessionid=\n", "/list?sessionid=3", False),
    ("longest match: longer Allow listed after", "User-agent: *\nDisallow: /shop\nAllow: /shop/open\n",
     "/shop/open/item", True),
    ("longest match: longer Allow listed first", "User-agent: *\nAllow: /shop/open\nDisallow: /shop\n",
     "/shop/open/item", True),
    ("longest match: longer Disallow", "User-agent: *\nDisallow: /shop/open\nAllow: /shop\n", "/shop/open/item",
     False),
    ("equal length: Allow wins", "User-agent: *\nDisallow: /page\nAllow: /page\n", "/page", True),
    ("`Allow: /$` allows the root", "User-agent: *\nAllow: /$\nDisallow: /\n", "/", True),
    ("`Allow: /$` allows only the root", "User-agent: *\nAllow: /$\nDisallow: /\n", "/other", False),
    ("another agent's group does not apply", "User-agent: other\nDisallow: /\n\nUser-agent: sitetune\n"
     "Disallow: /mine/\n", "/x", True),
    ("the agent's own group replaces `*`", "User-agent: *\nDisallow: /\n\nUser-agent: sitetune\nDisallow: /mine/\n",
     "/x", True),
    ("the agent's own group applies", "User-agent: *\nDisallow: /\n\nUser-agent: sitetune\nDisallow: /mine/\n",
     "/mine/a", False),
    ("product token matched case-insensitively", "User-agent: SiteTune\nDisallow: /caps/\n", "/caps/a", False),
    ("several user-agent lines in one group", "User-agent: a\nUser-agent: sitetune\nDisallow: /grouped/\n",
     "/grouped/x", False),
    ("percent-encoded and plain paths are equal", "User-agent: *\nDisallow: /%7Euser/\n", "/~user/page", False),
    ("an empty Disallow allows", "User-agent: *\nDisallow:\n", "/anything", True),
]
DELAYS = ["2", "0.5"]


def _stdlib(text: str) -> RobotFileParser:
    parser = RobotFileParser()
    parser.parse(text.splitlines())
    parser.modified()
    return parser


def main() -> None:
    rows = []
    right = {"stdlib": 0, "protego": 0}
    for what, text, path, allowed in CASES:
        url = "https://example.org" + path
        answers = {"stdlib": _stdlib(text).can_fetch(AGENT, url), "protego": Protego.parse(text).can_fetch(url, AGENT)}
        for name, answer in answers.items():
            right[name] += answer == allowed
        cells = [("allow" if a else "disallow") + ("" if a == allowed else " **wrong**") for a in answers.values()]
        rows.append(f"| {what} | `{path}` | {'allow' if allowed else 'disallow'} | {cells[0]} | {cells[1]} |")
    delay_rows = []
    for delay in DELAYS:
        text = f"User-agent: *\nCrawl-delay: {delay}\n"
        delay_rows.append(f"| `Crawl-delay: {delay}` | {float(delay):g} s | {_stdlib(text).crawl_delay(AGENT)} | "
                          f"{Protego.parse(text).crawl_delay(AGENT)} |")
    python = sys.version.split()[0]
    lines = [
        "## robots.txt parsers against RFC 9309",
        "",
        "- Command: `.venv/bin/python benchmarks/robots_parsers.py`",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {describe_machine()}",
        f"- Parsers: `urllib.robotparser` (Python {python}) and Protego {version('protego')}; user agent "
        f"`{AGENT}`",
        "",
        "| case | path | RFC 9309 | urllib.robotparser | Protego |",
        "|---|---|---|---|---|",
        *rows,
        f"| **right** | | | **{right['stdlib']} of {len(CASES)}** | **{right['protego']} of {len(CASES)}** |",
        "",
        "| robots.txt | RFC 9309 | urllib.robotparser | Protego |",
        "|---|---|---|---|",
        *delay_rows,
        "",
        "The standard library's parser ignores `*` and `$` in paths, applies the first matching rule rather than "
        "the longest, and reads a fractional `Crawl-delay` as none; the crawler therefore uses Protego.",
    ]
    out = REPO / "benchmarks" / "results" / "robots_parsers.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
