"""What search needs to know about a site, derived from its chunks once, when the store is built.

A question is read against the site it asks about: the site's own name and common words do not name a
programme, its template pages are the programme pages, its abbreviations ("SCM") name pages, and its words
are what a typo is corrected to. :func:`analyse_site` derives all of them from a store's chunks; the store
keeps the result beside them (``site.json`` in each generation, :mod:`sitetune.index.store`) and
:class:`~sitetune.search.Searcher` reads it, so opening a store does not re-read the whole site.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sitetune.corpus import Chunk
from sitetune.sitevocab import SiteVocabulary, abbreviations, template_pages

#: Bumped when the file's fields change; a store with another version is analysed again when opened.
SITE_ANALYSIS_VERSION = 1
#: A word of the speller's vocabulary: letters only (digits and underscores split words).
WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def word_counts(texts: Iterable[str]) -> Counter[str]:
    """Lower-case words of ``texts`` and how often each occurs."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(w.lower() for w in WORD.findall(text))
    return counts


def site_texts(chunks: Iterable[Chunk]) -> list[str]:
    """The site's words as a reader meets them: every chunk's text, and each place's title and page name."""
    chunks = list(chunks)
    return [c.text for c in chunks] + [
        name for c in chunks for o in c.occurrences for name in (o.section_title, o.page_name)
    ]


@dataclass(frozen=True)
class SiteAnalysis:
    """A site's vocabulary, page kinds and words, as search reads questions against them.

    Attributes:
        vocabulary: The site's name, its degree prefixes and the words that do not tell its pages apart.
        template_pages: Pages built on the site's shared section template (its programme pages).
        aliases: Abbreviations the site uses for its pages (``{"scm": page name}``).
        word_counts: The site's words and their counts: the spelling corrector's vocabulary.
    """

    vocabulary: SiteVocabulary
    template_pages: frozenset[str]
    aliases: Mapping[str, str]
    word_counts: Mapping[str, int]

    def to_json(self) -> str:
        """The ``site.json`` of a store generation."""
        v = self.vocabulary
        return json.dumps({
            "version": SITE_ANALYSIS_VERSION,
            "vocabulary": {"name": v.name, "name_forms": list(v.name_forms),
                           "degree_prefixes": list(v.degree_prefixes), "common_words": sorted(v.common_words)},
            "template_pages": sorted(self.template_pages),
            "aliases": dict(sorted(self.aliases.items())),
            "word_counts": dict(self.word_counts),
        }, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> SiteAnalysis:
        """Read ``site.json``.

        Raises:
            ValueError: Another version, or a field missing or of the wrong type.
        """
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != SITE_ANALYSIS_VERSION:
            found = data.get("version") if isinstance(data, dict) else None
            raise ValueError(f"site analysis version {found!r}, expected {SITE_ANALYSIS_VERSION}")
        try:
            v = data["vocabulary"]
            vocabulary = SiteVocabulary(
                name=str(v["name"]), name_forms=tuple(map(str, v["name_forms"])),
                degree_prefixes=tuple(map(str, v["degree_prefixes"])),
                common_words=frozenset(map(str, v["common_words"])),
            )
            return cls(
                vocabulary=vocabulary,
                template_pages=frozenset(map(str, data["template_pages"])),
                aliases={str(k): str(p) for k, p in data["aliases"].items()},
                word_counts={str(w): int(n) for w, n in data["word_counts"].items()},
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"site analysis: missing or malformed field ({exc!r})") from exc


def analyse_site(chunks: Sequence[Chunk]) -> SiteAnalysis:
    """Derive a site's :class:`SiteAnalysis` from a store's chunks (index time)."""
    return SiteAnalysis(
        vocabulary=SiteVocabulary.of_chunks(chunks),
        template_pages=template_pages((o.page_name, o.section_title) for c in chunks for o in c.occurrences),
        aliases=abbreviations((f"{c.section_title}\n{c.text}", c.pages) for c in chunks),
        word_counts=word_counts(site_texts(chunks)),
    )
