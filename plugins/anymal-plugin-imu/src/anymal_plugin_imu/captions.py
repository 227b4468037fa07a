"""Activity names, caption templates, and parsing an activity back out of generated text."""

from __future__ import annotations

import random
import re

__all__ = ["ACTIVITIES", "HAPT_LABELS", "CAPTION_TEMPLATES", "caption_for", "activity_from_text"]

#: The six activities of UCI HAPT, in label order (HAPT labels 1-6). Names are plain English because they
#: appear in prompts and captions; HAPT itself spells the last one "LAYING".
ACTIVITIES = ("walking", "walking upstairs", "walking downstairs", "sitting", "standing", "lying")
#: HAPT label id -> activity name.
HAPT_LABELS = {i + 1: name for i, name in enumerate(ACTIVITIES)}

#: Several phrasings per activity so the adapter learns the activity, not one sentence.
CAPTION_TEMPLATES: dict[str, tuple[str, ...]] = {
    "walking": (
        "The person is walking.",
        "Someone is walking on level ground.",
        "The wearer walks at a steady pace.",
        "This is a person walking.",
        "The motion shows regular walking steps on flat ground.",
    ),
    "walking upstairs": (
        "The person is walking upstairs.",
        "Someone is walking up the stairs.",
        "The wearer is climbing stairs.",
        "This is a person going up a staircase.",
        "The motion shows someone ascending the stairs.",
    ),
    "walking downstairs": (
        "The person is walking downstairs.",
        "Someone is walking down the stairs.",
        "The wearer is descending stairs.",
        "This is a person going down a staircase.",
        "The motion shows someone stepping down the stairs.",
    ),
    "sitting": (
        "The person is sitting.",
        "Someone is sitting still.",
        "The wearer is seated.",
        "This is a person sitting down and not moving much.",
        "The motion shows a seated person at rest.",
    ),
    "standing": (
        "The person is standing.",
        "Someone is standing still.",
        "The wearer stands upright without walking.",
        "This is a person standing in place.",
        "The motion shows a person standing at rest.",
    ),
    "lying": (
        "The person is lying down.",
        "Someone is lying down at rest.",
        "The wearer is lying flat.",
        "This is a person lying in bed.",
        "The motion shows a person lying still.",
    ),
}


def caption_for(activity: str, rng: random.Random | None = None) -> str:
    """A caption for ``activity``: a template drawn from ``rng`` (the first template without one)."""
    templates = CAPTION_TEMPLATES[activity]
    return templates[0] if rng is None else templates[rng.randrange(len(templates))]


# Patterns per activity, matched on lower-cased text. The stair patterns absorb a leading "walking"/"going"
# so that "walking downstairs" is never also read as "walking".
_STAIRS = r"(?:stairs?|staircase|stairway|steps)"
_VERB = r"(?:(?:walk|go|climb|head|mov|run|step|hurr)\w*\s+)?"
_PATTERNS: tuple[tuple[str, str], ...] = (
    ("walking downstairs", rf"\b{_VERB}downstairs\b"
                           rf"|\b{_VERB}down\s+(?:the\s+|a\s+|some\s+)?{_STAIRS}\b|\bdescend\w*|\bclimb\w*\s+down\b"),
    ("walking upstairs", rf"\b{_VERB}upstairs\b"
                         rf"|\b{_VERB}up\s+(?:the\s+|a\s+|some\s+)?{_STAIRS}\b|\bascend\w*|\bclimb\w*|\bstair\s*-?climb\w*"),
    ("lying", r"\bly(?:ing|e)\b|\blay(?:ing|s)?\b|\blie[sd]?\b|\brecumbent\b|\brecli\w*|\bsupine\b|\bprone\b"
              r"|\bon\s+(?:his|her|their)\s+back\b|\bin\s+bed\b|\bsleep\w*|\basleep\b"),
    ("sitting", r"\bsit(?:s|ting)?\b|\bsat\b|\bseated\b|\bon\s+a\s+chair\b"),
    ("standing", r"\bstand(?:s|ing)?\b|\bstood\b"),
    ("walking", r"\bwalk\w*|\bstroll\w*|\bpac(?:e|ing)\b|\bstep(?:s|ping)?\b|\bgait\b|\bwander\w*"),
)
_COMPILED = tuple((name, re.compile(pattern)) for name, pattern in _PATTERNS)
_NEGATED = re.compile(r"(?:\b(?:not|never|no longer|without|instead of)|n't)\s+(?:\w+\s+)?$")


def activity_from_text(text: str) -> str | None:
    """The activity a (generated) text states, or None if it names none of the six.

    Specific activities are matched first and their spans removed ("walking downstairs" is not also
    "walking"); among what remains, the activity mentioned first wins, and mentions right after a negation
    ("not walking", "isn't sitting") are skipped.
    """
    lowered = text.lower().replace("_", " ")  # HAPT's own spelling: WALKING_UPSTAIRS
    masked = lowered
    found: list[tuple[int, str]] = []
    for name, pattern in _COMPILED:
        for match in pattern.finditer(masked):
            if _NEGATED.search(lowered[:match.start()]):
                continue
            found.append((match.start(), name))
        # Blank out what this activity matched so more general patterns cannot re-read it.
        masked = pattern.sub(lambda m: " " * len(m.group(0)), masked)
    if not found:
        return None
    return min(found)[1]
