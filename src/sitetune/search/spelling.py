"""Query spelling: unknown words in a question mapped to the site's own words ("requirments" → "requirements").

Students type fast: "tution fee for internatinal studnets", "suply chain managment". BM25 and the
programme detector match words exactly, so one typo loses the word; the dense model's word pieces split a
misspelled word into fragments that mean little. :class:`QuerySpeller` learns the site's vocabulary from
its own sections (texts, section titles, page names) and replaces a question's word only when

- the word is unknown: neither it nor a regular inflection of it (plural, -ed, -ing, added or removed)
  is a site word or a whole word of the query model's tokenizer vocabulary, which holds common English
  words and names ("nigeria", "americans", "complain" stay as typed though the vocabulary lists only
  "american" and "complained"; a stemmer would also excuse "managment", which stems like "management");
- it is long enough to carry a typo (``min_length`` letters);
- a site word that starts with the same letter is within one edit (insertion, deletion, substitution or
  adjacent transposition; two edits for words of ``two_edit_length`` letters or more); the closest, then
  the most frequent, wins. Typists rarely miss a word's first letter, and a different first letter is
  how a real word turns into another real word ("defer" is not "refer").

Candidates come from a delete index (SymSpell, Garbe 2012): every word and its one-letter deletions (two
for long words) are keys, so a lookup costs a few dictionary probes, not a scan of the vocabulary. The
index is kept per first letter and built on that letter's first lookup (a few milliseconds), so opening a
store does not build keys for letters no question misspells.

The query is text from anyone, and correction runs under the server's model lock, so its cost is bounded
whatever is typed (see docs/security.md): a word's two-letter deletions number about ``n**2 / 2`` strings
of ``n`` letters, so one 999-letter word would build half a gigabyte of keys. Hence three limits, each a
constructor argument whose default is a constant below:

- words longer than :data:`MAX_CORRECTED_WORD_LENGTH` letters, or more than two letters longer than the
  longest indexed site word (so more than two edits from every candidate), are kept as typed;
- at most :data:`MAX_LOOKUPS_PER_QUERY` unknown words per query are looked up, the rest kept as typed;
- once :data:`CORRECTION_BUDGET_S` seconds of a query's correction are spent, the rest is kept as typed.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

from sitetune.siteanalysis import WORD, word_counts

_WORD = WORD
#: Regular endings: a word that is a known word with one of these added or removed is a word, not a typo.
_ENDINGS = ("s", "es", "ed", "d", "ing")

#: Longest word looked up. A lookup's keys grow with the square of the word's length and their bytes with
#: the cube: 40 letters is about 800 keys and well under a millisecond, and long enough for the long
#: words of English and most compounds of languages that write compounds as one word. A longer "word" in
#: a query is a pasted token or an attack, not a typo.
MAX_CORRECTED_WORD_LENGTH = 40
#: Unknown words looked up per query. A question holds a few typos; a query of hundreds of unknown words is
#: not a question, and every lookup runs while other requests wait for the model.
MAX_LOOKUPS_PER_QUERY = 12
#: Seconds one query's correction may take before the rest of it is kept as typed. Twelve lookups of the
#: longest words take under 10 ms on a busy two-core machine; a normal question takes well under 1 ms, so
#: the budget is only reached on a machine stalled for other reasons.
CORRECTION_BUDGET_S = 0.05


def _deletes(word: str, depth: int = 1) -> set[str]:
    """Every string ``word`` becomes with 1 .. ``depth`` letters deleted."""
    out: set[str] = set()
    layer = {word}
    for _ in range(depth):
        layer = {w[:i] + w[i + 1:] for w in layer for i in range(len(w))}
        out |= layer
    return out


def edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, substitutions, adjacent transpositions."""
    if a == b:
        return 0
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, start=1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def tokenizer_words(model_path: str | Path) -> frozenset[str]:
    """Whole lower-case words of a WordPiece tokenizer's vocabulary (empty when the model has none).

    Read from ``vocab.txt`` or, where the model was saved with only the fast tokenizer's
    ``tokenizer.json`` (what transformers 5 writes for a fine-tuned model), from its ``model.vocab``.
    """
    folder = Path(model_path)
    stamps = tuple(f.stat().st_mtime_ns if f.is_file() else 0 for f in (folder / n for n in _VOCAB_FILES))
    return _tokenizer_words(str(folder.resolve()), stamps)


_VOCAB_FILES = ("vocab.txt", "tokenizer.json")


@functools.lru_cache(maxsize=8)
def _tokenizer_words(folder_name: str, stamps: tuple[int, ...]) -> frozenset[str]:
    """:func:`tokenizer_words`, once per model folder and file version (every store open asks again)."""
    del stamps  # part of the cache key only: a model saved again in place is read again
    folder = Path(folder_name)
    vocab = folder / "vocab.txt"
    if vocab.is_file():
        tokens: Iterable[str] = vocab.read_text(encoding="utf-8").split("\n")
    elif (folder / "tokenizer.json").is_file():
        try:
            model = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8")).get("model", {})
        except (OSError, ValueError):
            return frozenset()
        table = model.get("vocab") if isinstance(model, dict) else None
        # WordPiece keeps {token: id}; other tokenizers (BPE merges, Unigram lists) have no whole words here.
        tokens = table if isinstance(table, dict) and model.get("type") == "WordPiece" else ()
    else:
        return frozenset()
    return frozenset(w for w in tokens if w.isalpha() and w.islower() and not w.startswith("##"))


class QuerySpeller:
    """Corrects a question's unknown words to the site's words.

    Args:
        texts: The site's text (sections, titles, page names); its words and their counts are the
            vocabulary.
        known_words: Words that are right as typed even when the site never uses them (the query model's
            tokenizer words, :func:`tokenizer_words`).
        min_length: Shorter words are never changed ("fe", "ba" are too ambiguous to correct).
        two_edit_length: Words at least this long may be two edits from their correction.
        min_count: A site word is a candidate only if it occurs this often (one-off typos in the pages
            are not corrections).
        max_words: Only the site's most frequent words are candidates (bounds the index's memory on
            very large sites).
        max_word_length: Longer words are never looked up (nor site words more than two letters longer
            indexed, since no lookup could reach them).
        max_lookups: Unknown words looked up per query by :meth:`correct`; later ones stay as typed.
        time_budget_s: Seconds :meth:`correct` spends on one query before keeping the rest as typed.
        site_counts: The site's words and counts, already counted (a store's
            :attr:`~sitetune.siteanalysis.SiteAnalysis.word_counts`); ``texts`` is then not read.
    """

    def __init__(
        self,
        texts: Iterable[str],
        known_words: Iterable[str] = (),
        *,
        min_length: int = 5,
        two_edit_length: int = 9,
        min_count: int = 2,
        max_words: int = 50_000,
        max_word_length: int = MAX_CORRECTED_WORD_LENGTH,
        max_lookups: int = MAX_LOOKUPS_PER_QUERY,
        time_budget_s: float = CORRECTION_BUDGET_S,
        site_counts: Mapping[str, int] | None = None,
    ) -> None:
        counts: Counter[str] = word_counts(texts) if site_counts is None else Counter(site_counts)
        self.counts = counts
        self.known = frozenset(known_words) | frozenset(counts)
        self.min_length = min_length
        self.two_edit_length = two_edit_length
        self.max_lookups = max_lookups
        self.time_budget_s = time_budget_s
        # Candidates by first letter; each letter's delete index is built on its first lookup. A candidate
        # shares the typed word's first letter, so one letter's index finds exactly what a whole one would,
        # and opening a store does not pay for the letters no question misspells.
        self._words_by_letter: dict[str, list[str]] = defaultdict(list)
        self._by_delete: dict[str, dict[str, set[str]]] = {}
        self._build_lock = threading.Lock()
        longest = 0
        for word, n in counts.most_common(max_words):
            # A site word more than two letters longer than any word looked up is more than two edits
            # from it, so indexing it would only cost memory (a pasted token can be thousands of letters).
            if n >= min_count and min_length - 1 <= len(word) <= max_word_length + 2:
                longest = max(longest, len(word))
                self._words_by_letter[word[0]].append(word)
        # Edit distance is at least the difference in length, so a word more than two letters longer than
        # every candidate has no suggestion: skipping it changes no answer.
        self.max_word_length = min(max_word_length, longest + 2)

    def warm(self) -> None:
        """Build every letter's delete index now (a server does this at start, off the first question)."""
        for letter in list(self._words_by_letter):
            self._delete_index(letter)

    def _delete_index(self, letter: str) -> dict[str, set[str]]:
        """The delete index (SymSpell) of the candidates starting with ``letter``, built once."""
        index = self._by_delete.get(letter)
        if index is None:
            with self._build_lock:
                index = self._by_delete.get(letter)
                if index is None:
                    built: dict[str, set[str]] = defaultdict(set)
                    for word in self._words_by_letter.get(letter, ()):
                        built[word].add(word)
                        for d in _deletes(word, self._depth(word)):
                            built[d].add(word)
                    index = self._by_delete[letter] = dict(built)
        return index

    def _depth(self, word: str) -> int:
        return 2 if len(word) >= self.two_edit_length else 1

    def is_known(self, word: str) -> bool:
        """Whether the lower-case ``word`` or a regular inflection of it is a known word."""
        forms = {word} | {word + end for end in _ENDINGS}
        forms |= {word[: -len(end)] for end in _ENDINGS if word.endswith(end) and len(word) > len(end) + 2}
        return not forms.isdisjoint(self.known)

    def _correctable(self, w: str) -> bool:
        """Whether the lower-case ``w`` is looked up: unknown, and neither too short nor too long."""
        return self.min_length <= len(w) <= self.max_word_length and not self.is_known(w)

    def suggest(self, word: str) -> str | None:
        """The site word ``word`` most likely stands for, or None when it is known or has no close word.

        Words longer than ``max_word_length`` get None without a lookup.
        """
        w = word.lower()
        return self._lookup(w) if self._correctable(w) else None

    def _lookup(self, w: str) -> str | None:
        """The best candidate for the unknown lower-case ``w`` (None when no site word is close)."""
        limit = self._depth(w)
        index = self._delete_index(w[0])
        candidates: set[str] = set(index.get(w, ()))
        for d in _deletes(w, limit):
            candidates |= index.get(d, set())
        scored = [(edit_distance(w, c), -self.counts[c], c) for c in candidates if c[0] == w[0]]
        scored = [s for s in scored if s[0] <= limit]
        return min(scored)[2] if scored else None

    def correct(self, query: str) -> str:
        """``query`` with each unknown word replaced by its suggestion (the rest kept as typed).

        Only the first ``max_lookups`` unknown words are looked up, and none once ``time_budget_s``
        seconds have passed since the call began; the words after that are kept as typed.
        """
        started = time.monotonic()
        lookups = 0

        def replace(match: re.Match[str]) -> str:
            nonlocal lookups, started
            typed = match.group(0)
            w = typed.lower()
            if lookups >= self.max_lookups or not self._correctable(w):
                return typed
            if w[0] not in self._by_delete:
                # A letter's first lookup builds its index: bounded by the site's words, once per process,
                # and not the query's doing, so it does not count against the query's budget.
                building = time.monotonic()
                self._delete_index(w[0])
                started += time.monotonic() - building
            if time.monotonic() - started >= self.time_budget_s:
                lookups = self.max_lookups  # spent: no more clock reads either
                return typed
            lookups += 1
            suggestion = self._lookup(w)
            return typed if suggestion is None else suggestion

        return _WORD.sub(replace, query)
