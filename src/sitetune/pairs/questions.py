"""Pseudo-questions: what a prospective student would type, built from a section's heading and page.

Real questions name a topic ("deadline", "English test", "tuition") and usually a programme; headings on
university sites name the same topics. Each rule maps heading keywords to question templates over the
programme name; a heading no rule matches still yields a generic question about its topic.
"""

from __future__ import annotations

import random
import re

from sitetune.records import section_type_of

# (keywords in the lower-cased heading or page name, question templates over {prog} and {topic})
_RULES: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (
        ("english", "language requirement"),
        (
            "What are the English language requirements for {prog}?",
            "Do I need an English test like IELTS or TOEFL to apply for {prog}?",
            "What English level is required for {prog}?",
        ),
    ),
    (
        (
            "academic requirement",
            "academic entry",
            "entry requirement",
            "admission requirement",
            "qualifying bachelor",
            "qualifying bachelors",
            "non-qualifying",
        ),
        (
            "Which bachelor degrees qualify for {prog}?",
            "Am I eligible for {prog} with my bachelor's degree?",
            "What are the academic entry requirements for {prog}?",
        ),
    ),
    (
        ("potentially qualifying", "supplement"),
        (
            "Can I supplement my bachelor to qualify for {prog}?",
            "My bachelor does not fully qualify for {prog}, what can I do?",
        ),
    ),
    (
        ("deadline", "admission process", "how to apply", "application"),
        (
            "When is the application deadline for {prog}?",
            "How do I apply to {prog}?",
        ),
    ),
    (
        ("selection", "criteria"),
        (
            "How are applicants selected for {prog}?",
            "What are the selection criteria for {prog}?",
        ),
    ),
    (
        ("statistics", "admitted", "grade"),
        (
            "How many applicants are admitted to {prog} and what grades do they have?",
            "What GPA do I need to get into {prog}?",
        ),
    ),
    (
        ("self-assessment", "course match", "fulfil the academic"),
        (
            "How can I check if my courses meet the requirements for {prog}?",
            "How do I find out if I fulfil the academic requirements for {prog}?",
        ),
    ),
    (("advance assessment",), ("Can I get an advance assessment of my bachelor for {prog}?",)),
    (
        ("about the programme", "about the program", "programme profile", "why"),
        (
            "What is {prog} about?",
            "What will I learn in {prog}?",
        ),
    ),
    (
        ("course", "curriculum", "structure", "elective", "semester"),
        (
            "Which courses are taught in {prog}?",
            "What does the programme structure of {prog} look like?",
        ),
    ),
    (
        ("career", "job", "graduate profile", "after graduation"),
        (
            "What jobs can I get after {prog}?",
            "What are the career opportunities after {prog}?",
        ),
    ),
    (("contact", "student counsel", "guidance"), ("Who can I contact with questions about {prog}?",)),
    (
        ("tuition", "fee", "payment", "cost", "salary and su", "scholarship"),
        (
            "How much does {prog} cost?",
            "Do I have to pay tuition fees for {prog}?",
        ),
    ),
    (
        ("open day", "info meeting", "information meeting", "webinar"),
        ("When can I attend an open day or info meeting about {prog}?",),
    ),
    (("meet the students", "student life", "testimonial"), ("What do students say about {prog}?",)),
    (("exchange", "abroad", "international"), ("Can I go on exchange during {prog}?",)),
    (("part-time", "full-time"), ("Can I take {prog} part-time?",)),
    (
        ("special educational support", "disabilit"),
        ("Is there support for students with disabilities at CBS?",),
    ),
    (
        ("residence permit", "visa", "non-eu", "citizens"),
        ("Do I need a residence permit to study {prog} as a non-EU student?",),
    ),
    (
        ("study start", "introduction", "intro days", "before you start"),
        ("What happens at the study start of {prog}?",),
    ),
    (("employer",), ("What does my employer need to know if I take {prog}?",)),
)

_GENERIC = ("What does CBS say about {topic} for {prog}?",)

_SPACES = re.compile(r"\s+")
_NUMBERING = re.compile(r"^\s*\d+[.)]\s*")


def programme_names(page_name: str) -> list[str]:
    """Ways a student names the programme of ``page_name``: the full name and the part after " - "."""
    full = _SPACES.sub(" ", page_name).strip()
    names = [full]
    if " - " in full:
        short = full.split(" - ")[-1].strip()
        if short and short not in names:
            names.append(short)
    return names


def topic_of(section_type: str) -> str:
    """A heading as a lower-case topic phrase ("2. ACADEMIC REQUIREMENTS" -> "academic requirements")."""
    topic = _NUMBERING.sub("", section_type_of(section_type))
    topic = topic.replace("(Can Supplement to Qualify)", "").strip()
    return topic.lower() if topic.isupper() or topic[:1].isupper() else topic


def questions_for(page_name: str, section_type: str, rng: random.Random, k: int) -> list[str]:
    """Up to ``k`` distinct pseudo-questions for one section.

    Args:
        page_name: The page (usually a programme) the section is on.
        section_type: The section heading without its part suffix.
        rng: The seeded generator that picks templates and name forms.
        k: How many questions at most.

    Returns:
        Questions in random order; none when the heading is empty and no rule matches the page.
    """
    if k <= 0:
        return []
    section_type = section_type_of(section_type)
    key = f"{section_type} {page_name}".lower()
    heading = section_type.lower()
    templates: list[str] = []
    for keywords, rule_templates in _RULES:
        # Headings decide first; the page name only breaks ties for pages about one topic.
        if any(word in heading for word in keywords):
            templates.extend(rule_templates)
    if not templates:
        for keywords, rule_templates in _RULES:
            if any(word in key for word in keywords):
                templates.extend(rule_templates)
    topic = topic_of(section_type)
    # A heading that repeats the page name ("Meet Anna" on "Anna") says nothing a question could ask.
    if topic and topic.lower() not in page_name.lower() and page_name.lower() not in topic.lower():
        templates.extend(_GENERIC)
    if not templates:
        return []
    rng.shuffle(templates)
    names = programme_names(page_name)
    out: list[str] = []
    for template in templates:
        question = template.format(prog=rng.choice(names), topic=topic)
        if question not in out:
            out.append(question)
        if len(out) == k:
            break
    return out
