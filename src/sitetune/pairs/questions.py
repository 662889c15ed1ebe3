"""Pseudo-questions: what a prospective student would type, built from a section's heading and page.

Real questions name a topic ("deadline", "IELTS", "tuition fee"), often a programme, and are as often
short lower-case phrases as full sentences ("tuition fee Public Management", "do I need GMAT").
Headings on university sites name the same topics. Each rule maps heading keywords to two template
lists: questions about a programme (over ``{prog}``) and general ones; a programme page gets both, any
other page only the general ones. A heading no rule matches still yields a question about its topic.
"""

from __future__ import annotations

import random
import re

from sitetune.records import section_type_of

_Rule = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]

# (keywords in the lower-cased heading, programme templates over {prog}, general templates)
_RULES: tuple[_Rule, ...] = (
    (("english", "language requirement", "ielts", "toefl"), (
        "What are the English language requirements for {prog}?",
        "what IELTS score do I need for {prog}",
        "english requirement for {prog}",
    ), (
        "Do I need an English test like IELTS or TOEFL?",
        "does my previous degree taught in English count as proof of English",
        "what TOEFL score is required",
    )),
    (("academic requirement", "academic entry", "entry requirement", "admission requirement",
      "qualifying bachelor", "qualifying bachelors", "non-qualifying", "are you qualified"), (
        "Which bachelor degrees qualify for {prog}?",
        "what bachelor do I need for {prog}",
        "{prog} entry requirements",
    ), (
        "Can I apply with my bachelor degree?",
        "what are the academic entry requirements for a master",
    )),
    (("potentially qualifying", "supplement", "becoming qualified"), (
        "Can I supplement my bachelor to qualify for {prog}?",
    ), (
        "I don't meet the academic requirements, can I take extra courses to qualify?",
        "where can I take qualifying supplementary courses",
    )),
    (("deadline", "admission process", "how to apply", "application round", "when and how"), (
        "When is the application deadline for {prog}?",
        "how do I apply to {prog}",
    ), (
        "When is the application deadline?",
        "how do I apply for a master at CBS",
    )),
    (("selection", "criteria"), (
        "How are applicants selected for {prog}?",
        "selection criteria {prog}",
    ), (
        "How are students selected for the master programmes?",
    )),
    (("statistics", "admitted"), (
        "What GPA do I need to get into {prog}?",
    ), (
        "how many applicants and places are there",
        "what grade average did admitted students have",
    )),
    (("self-assessment", "course match", "fulfil the academic"), (
        "How do I check if my courses meet the requirements for {prog}?",
    ), (
        "how do I find out if I fulfil the academic requirements",
    )),
    (("advance assessment",), (
        "Can I get an advance assessment of my bachelor for {prog}?",
    ), (
        "Can CBS check if I am qualified before I apply?",
    )),
    (("about the programme", "about the program", "programme profile"), (
        "What is {prog} about?",
        "what will I learn in {prog}",
    ), ()),
    (("course overview", "curriculum", "structure", "elective", "semester"), (
        "Which courses are taught in {prog}?",
        "{prog} courses",
    ), ()),
    (("career", "job", "graduate profile"), (
        "What jobs can I get after {prog}?",
    ), (
        "what are the career opportunities after a CBS master",
    )),
    (("contact", "guidance", "questions?"), (
        "Who can I contact with questions about {prog}?",
    ), (
        "how can I contact CBS admissions with questions",
    )),
    (("tuition", "fee", "payment", "salary and su", "scholarship"), (
        "tuition fee {prog}",
    ), (
        "How much are the tuition fees for students from outside the EU?",
        "do I have to pay an application fee",
        "are there scholarships for international students",
    )),
    (("open day", "info meeting", "information meeting"), (
        "When are the open days for {prog}?",
    ), (
        "when are the open days and info meetings for master programmes",
    )),
    (("meet the students", "meet a student"), (
        "What do students say about {prog}?",
    ), (
        "what is it like to study at CBS, student experiences",
    )),
    (("double degree",), (
        "is there a double degree in {prog}",
    ), (
        "how do I apply for a double degree",
    )),
    (("part-time",), (
        "Can I take {prog} part-time?",
    ), (
        "is it possible to study a master part-time while working",
    )),
    (("special", "disabilit", "dyslexia"), (), (
        "I have dyslexia, can I get special support?",
    )),
    (("residence permit", "visa", "non-eu", "arrive in denmark"), (), (
        "how do I get a student residence permit for Denmark",
        "what do non-EU applicants need to do",
    )),
    (("study start", "introduct", "get ready"), (), (
        "when does the semester start and is there an introduction week",
    )),
    (("answer to your application", "accepted", "offer", "conditional"), (
        "when do I get an answer for {prog}",
    ), (
        "When will I hear back about my application?",
        "what does conditional admission mean",
    )),
    (("documentation", "upload", "diploma", "transcript"), (), (
        "which documents do I need to upload when applying",
    )),
    (("ects", "credits"), (), (
        "my university doesn't use ECTS credits, how do I convert them",
    )),
    (("legal claim", "legal right"), (), (
        "do CBS bachelor graduates get guaranteed admission to a master",
    )),
)

_GENERIC_PROGRAMME = ("{topic} {prog}", "What about {topic} for {prog}?")
_GENERIC = ("{topic} at CBS", "What about {topic}?")

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
    return topic.replace("(Can Supplement to Qualify)", "").strip().lower()


def _casual(question: str, rng: random.Random) -> str:
    # Students type lower-case and drop the question mark about half the time.
    if rng.random() < 0.5:
        question = question[:1].lower() + question[1:]
        question = question.rstrip("?")
    return question


def questions_for(page_name: str, section_type: str, rng: random.Random, k: int, *,
                  programme: bool = True) -> list[str]:
    """Up to ``k`` distinct pseudo-questions for one section.

    Args:
        page_name: The page the section is on.
        section_type: The section heading (a " (Part N)" suffix is ignored).
        rng: The seeded generator that picks templates and name forms.
        k: How many questions at most.
        programme: Whether the page is a programme's page (its name may appear in questions).

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
    if not templates:
        return []
    rng.shuffle(templates)
    names = programme_names(page_name)
    out: list[str] = []
    for template in templates:
        question = _casual(template.format(prog=rng.choice(names), topic=topic), rng)
        if question not in out:
            out.append(question)
        if len(out) == k:
            break
    return out
