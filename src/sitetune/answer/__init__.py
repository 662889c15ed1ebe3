"""Answers: extractive (pieces of the top sections quoted with their structure, each cited) or generative through an
OpenAI-compatible endpoint with the retrieved text treated as untrusted data."""

from __future__ import annotations

from sitetune.answer.answerer import Answerer, SearcherLike
from sitetune.answer.extractive import SentenceScorer, extractive_answer, not_found
from sitetune.answer.llm import (
    LLMConfig,
    LLMError,
    build_messages,
    chat_completion,
    llm_answer,
    sanitize_answer,
)
from sitetune.answer.passages import Unit, split_units
from sitetune.answer.types import NOT_FOUND_TEXT, Answer, AnswerBlock, Citation
from sitetune.sentences import split_sentences

__all__ = [
    "NOT_FOUND_TEXT",
    "Answer",
    "AnswerBlock",
    "Answerer",
    "Citation",
    "LLMConfig",
    "LLMError",
    "SearcherLike",
    "SentenceScorer",
    "Unit",
    "build_messages",
    "chat_completion",
    "extractive_answer",
    "llm_answer",
    "not_found",
    "sanitize_answer",
    "split_sentences",
    "split_units",
]
