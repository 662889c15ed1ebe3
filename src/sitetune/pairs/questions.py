"""Pseudo-questions: what a visitor of a university or organisation site would type.

They are built from a section's heading, its page and the site's own name.

Real questions name a topic ("deadline", "IELTS", "tuition fee"), often a programme, and are as often
short lower-case phrases as full sentences ("tuition fee Public Management", "do I need GMAT").
Headings on university sites name the same topics. Each rule maps heading keywords to two template
lists: questions about a programme (over ``{prog}``) and general ones (some over ``{site}``, the name the
site calls itself, see :mod:`sitetune.sitevocab`); a programme page gets both, any other page only the
general ones. A heading no rule matches still yields a question about its topic.

The templates know no particular site, country or procedure: they use the admission vocabulary every
university shares (deadlines, entry requirements, English tests, fees, visas).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from sitetune.records import section_type_of
from sitetune.sitevocab import entity_names

_Rule = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]

# (keywords in the lower-cased heading, programme templates over {prog}, general templates)
_RULES: tuple[_Rule, ...] = (
    (("english", "language requirement", "ielts", "toefl", "language test", "language proficiency"), (
        "What are the English language requirements for {prog}?",
        "what IELTS score do I need for {prog}",
        "english requirement for {prog}",
    ), (
        "Do I need an English test like IELTS or TOEFL?",
        "does a previous degree taught in English count as proof of English",
        "what TOEFL score is required",
        "what English level does {site} require",
    )),
    (("academic requirement", "academic entry", "entry requirement", "admission requirement", "qualifying",
      "are you qualified", "eligib", "who can apply"), (
        "Which bachelor degrees qualify for {prog}?",
        "what bachelor do I need for {prog}",
        "{prog} entry requirements",
        "can I apply for {prog} with a degree in another subject",
    ), (
        "Can I apply with my bachelor degree?",
        "what are the academic entry requirements for a master",
        "what are the entry requirements at {site}",
    )),
    (("supplement", "becoming qualified", "bridging", "pre-master", "premaster"), (
        "Can I take extra courses to qualify for {prog}?",
    ), (
        "I don't meet the academic requirements, can I take extra courses to qualify?",
        "where can I take courses to meet the entry requirements",
    )),
    (("deadline", "admission process", "application process", "how to apply", "application round", "when and how",
      "applying"), (
        "When is the application deadline for {prog}?",
        "how do I apply to {prog}",
    ), (
        "When is the application deadline?",
        "how do I apply for a master at {site}",
        "how do I apply",
    )),
    (("selection", "criteria"), (
        "How are applicants selected for {prog}?",
        "selection criteria {prog}",
    ), (
        "How are students selected for the programmes?",
    )),
    (("statistics", "admitted"), (
        "What GPA do I need to get into {prog}?",
    ), (
        "how many applicants and places are there",
        "what grade average did admitted students have",
    )),
    (("self-assessment", "advance assessment", "pre-assessment", "eligibility check", "fulfil the"), (
        "How do I check if my courses meet the requirements for {prog}?",
    ), (
        "how do I find out if I fulfil the academic requirements",
        "Can {site} check if I am qualified before I apply?",
    )),
    (("about the programme", "about the program", "about the course", "programme profile", "programme overview",
      "why study"), (
        "What is {prog} about?",
        "what will I learn in {prog}",
    ), ()),
    (("course overview", "curriculum", "structure", "elective", "semester", "module", "course content"), (
        "Which courses are taught in {prog}?",
        "{prog} courses",
    ), ()),
    (("career", "job", "graduate profile", "employab"), (
        "What jobs can I get after {prog}?",
    ), (
        "what are the career opportunities after graduating from {site}",
        "what jobs do graduates get",
    )),
    (("contact", "guidance", "questions?", "get in touch"), (
        "Who can I contact with questions about {prog}?",
    ), (
        "how can I contact {site} admissions with questions",
        "who do I contact with questions about admission",
    )),
    (("tuition", "fee", "payment", "scholarship", "funding"), (
        "tuition fee {prog}",
        "how much does {prog} cost",
    ), (
        "How much are the tuition fees for international students?",
        "do I have to pay an application fee",
        "are there scholarships for international students",
    )),
    (("open day", "info meeting", "information meeting", "visit us", "virtual tour"), (
        "When are the open days for {prog}?",
    ), (
        "when are the open days and info meetings",
        "can I visit {site} before applying",
    )),
    (("meet the students", "meet a student", "student stories", "testimonial", "what our students"), (
        "What do students say about {prog}?",
    ), (
        "what is it like to study at {site}, student experiences",
    )),
    (("double degree", "joint degree", "dual degree"), (
        "is there a double degree in {prog}",
    ), (
        "how do I apply for a double degree",
    )),
    (("part-time", "part time"), (
        "Can I take {prog} part-time?",
    ), (
        "is it possible to study a master part-time while working",
    )),
    (("special support", "special educational", "disabilit", "dyslexia"), (), (
        "I have dyslexia, can I get special support?",
        "what support is there for students with disabilities",
    )),
    (("residence permit", "visa", "immigration", "citizens"), (), (
        "how do I get a student visa or residence permit",
        "what do international applicants need to do before they arrive",
    )),
    (("study start", "introduct", "get ready", "orientation", "welcome week", "semester dates", "term dates"), (), (
        "when does the semester start and is there an introduction week",
    )),
    (("answer to your application", "accepted", "offer", "conditional"), (
        "when do I get an answer for {prog}",
    ), (
        "When will I hear back about my application?",
        "what does conditional admission mean",
    )),
    (("documentation", "documents", "upload", "diploma", "transcript"), (), (
        "which documents do I need to upload when applying",
    )),
    (("ects", "credits", "credit transfer"), (), (
        "my university uses a different credit system, how are my credits converted",
        "how many credits do I need",
    )),
    (("accommodation", "housing", "where to live"), (), (
        "how do I find student accommodation",
        "can {site} help me find housing",
    )),
    (("exchange", "study abroad"), (
        "can I go on exchange during {prog}",
    ), (
        "can I study abroad for a semester",
    )),
)

_GENERIC_PROGRAMME = ("{topic} {prog}", "What about {topic} for {prog}?")
_GENERIC = ("{topic} at {site}", "What about {topic}?")

_NUMBERING = re.compile(r"^\s*\d+[.)]\s*")
_PARENTHETICAL = re.compile(r"\s*\([^)]*\)")


def programme_names(page_name: str, degree_prefixes: Sequence[str] = ()) -> list[str]:
    """Ways a student names the programme of ``page_name``.

    The full name, the part after " - " and the name without its degree prefix (see
    :func:`sitetune.sitevocab.entity_names`).
    """
    return entity_names(page_name, degree_prefixes)


def topic_of(section_type: str) -> str:
    """A heading as a lower-case topic phrase ("2. ACADEMIC REQUIREMENTS" -> "academic requirements").

    A parenthetical aside ("Bachelor Degrees (Can Supplement to Qualify)") is left out.
    """
    topic = _NUMBERING.sub("", section_type_of(section_type))
    return " ".join(_PARENTHETICAL.sub(" ", topic).split()).lower()


def _casual(question: str, rng: random.Random) -> str:
    # Students type lower-case and drop the question mark about half the time.
    if rng.random() < 0.5:
        question = question[:1].lower() + question[1:]
        question = question.rstrip("?")
    return question


def questions_for(page_name: str, section_type: str, rng: random.Random, k: int, *,
                  programme: bool = True, site: str = "", names: Sequence[str] | None = None) -> list[str]:
    """Up to ``k`` distinct pseudo-questions for one section.

    Args:
        page_name: The page the section is on.
        section_type: The section heading (a " (Part N)" suffix is ignored).
        rng: The seeded generator that picks templates and name forms.
        k: How many questions at most.
        programme: Whether the page is a programme's page (its name may appear in questions).
        site: What the site calls itself; templates that name the site are skipped when empty.
        names: Ways to name the page's programme (default :func:`programme_names` of ``page_name``).

    Returns:
        Questions in random order; none when the heading is empty and no rule matches.
    """
    if k <= 0:
        return []
    section_type = section_type_of(section_type)
    heading = section_type.lower()
    templates: list[str] = []
    for keywords, with_programme, general in _RULES:
        if any(word in heading for word in keywords):
            templates.extend(with_programme if programme else ())
            templates.extend(general)
    if not templates:
        key = page_name.lower()
        for keywords, with_programme, general in _RULES:
            if any(word in key for word in keywords):
                templates.extend(with_programme if programme else ())
                templates.extend(general)
    topic = topic_of(section_type)
    # A heading that repeats the page name ("Anna" on "Anna") says nothing a question could ask.
    if topic and topic not in page_name.lower() and page_name.lower() not in topic:
        templates.extend(_GENERIC_PROGRAMME if programme else _GENERIC)
    site = " ".join(site.split())
    if not site:
        templates = [t for t in templates if "{site}" not in t]
    if not templates:
        return []
    rng.shuffle(templates)
    choices = list(names) if names else programme_names(page_name)
    out: list[str] = []
    for template in templates:
        question = _casual(template.format(prog=rng.choice(choices), topic=topic, site=site), rng)
        if question not in out:
            out.append(question)
        if len(out) == k:
            break
    return out
