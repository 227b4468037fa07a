"""Activity names, caption templates and parsing activities out of generated text."""

from __future__ import annotations

import random

import pytest

from anymal_plugin_imu.captions import ACTIVITIES, CAPTION_TEMPLATES, HAPT_LABELS, activity_from_text, caption_for


def test_six_activities_in_hapt_label_order():
    assert ACTIVITIES == ("walking", "walking upstairs", "walking downstairs", "sitting", "standing", "lying")
    assert HAPT_LABELS[1] == "walking" and HAPT_LABELS[6] == "lying"
    assert set(CAPTION_TEMPLATES) == set(ACTIVITIES)


@pytest.mark.parametrize("activity", ACTIVITIES)
def test_every_template_parses_back_to_its_activity(activity):
    templates = CAPTION_TEMPLATES[activity]
    assert len(set(templates)) >= 4
    for template in templates:
        assert activity_from_text(template) == activity, template


def test_captions_are_deterministic_per_seed():
    a = [caption_for("sitting", random.Random(1)) for _ in range(3)]
    b = [caption_for("sitting", random.Random(1)) for _ in range(3)]
    assert a == b
    rng = random.Random(0)
    assert len({caption_for("walking", rng) for _ in range(50)}) > 1
    assert caption_for("lying") == CAPTION_TEMPLATES["lying"][0]


@pytest.mark.parametrize(
    "text, activity",
    [
        ("The person is walking downstairs.", "walking downstairs"),
        ("Someone is walking down the stairs.", "walking downstairs"),
        ("They are going down a staircase", "walking downstairs"),
        ("descending", "walking downstairs"),
        ("climbing down the stairs", "walking downstairs"),
        ("WALKING_DOWNSTAIRS", "walking downstairs"),
        ("The person walks upstairs", "walking upstairs"),
        ("climbing stairs", "walking upstairs"),
        ("walking up the steps", "walking upstairs"),
        ("ascending a stairway", "walking upstairs"),
        ("WALKING_UPSTAIRS", "walking upstairs"),
        ("The person is walking.", "walking"),
        ("Walking down the street.", "walking"),  # "down" alone is not stairs
        ("strolling along", "walking"),
        ("He is lying down.", "lying"),
        ("LAYING", "lying"),
        ("She lies on her back.", "lying"),
        ("reclining on the sofa", "lying"),
        ("The person is seated at a desk.", "sitting"),
        ("sits", "sitting"),
        ("Someone is standing still.", "standing"),
        ("The person isn't walking, they are sitting.", "sitting"),
        ("Not sitting but walking.", "walking"),
        ("The person is not walking upstairs; they walk downstairs.", "walking downstairs"),
        ("I cannot tell from this signal.", None),
        ("", None),
    ],
)
def test_activity_from_text(text, activity):
    assert activity_from_text(text) == activity
