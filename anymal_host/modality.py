"""The modality contract: what a plugin declares and implements for one sense.

A modality turns a source (a path, bytes or an array) into a validated tensor (``load``), brings it to what
its encoder expects (``preprocess``), batches items of varying length (``collate``) and builds its encoder.
The projector and the LLM are the host's business; a modality never imports them.
"""

from __future__ import annotations

import mimetypes
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

if TYPE_CHECKING:
    import torch

    from .encoder import Encoder

__all__ = ["SignalSpec", "Modality", "Encoder", "DatasetSpec", "pad_sequences"]


def __getattr__(name: str) -> Any:
    # torch loads when an encoder is built, not when a plugin declares its modality: `anymal plugins` and a
    # plugin's registration stay free of torch (PEP 562). ``from anymal_host.modality import Encoder`` works
    # as before.
    if name == "Encoder":
        from .encoder import Encoder

        return Encoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class SignalSpec:
    """What a modality's encoder expects once a signal is preprocessed."""

    # Samples (or frames) per second the encoder runs at; None for signals without a time axis (images).
    sample_rate: float | None = None
    # Number of channels per step (6 for accelerometer + gyroscope, 3 for RGB, 1 for mono audio).
    channels: int | None = None
    # Fixed spatial size (height, width) for images and video frames; None if not spatial.
    size: tuple[int, int] | None = None
    # Human-readable notes shown by ``anymal modalities`` (units, ranges, layouts).
    description: str = ""


class Modality(ABC):
    """One sense. Subclass it in a plugin and register an instance through ``register_modalities``."""

    #: Unique name, used in attachments, adapter configs and data set names (``imu``, ``image``...).
    name: str
    #: File extensions this modality accepts, lower case with the dot (``(".csv", ".npy")``).
    file_extensions: tuple[str, ...] = ()
    #: Media (MIME) types this modality accepts (``("text/csv",)``).
    media_types: tuple[str, ...] = ()
    #: What the encoder expects after ``preprocess``.
    signal_spec: SignalSpec = SignalSpec()
    #: One line for ``anymal modalities``.
    description: str = ""
    #: Encoder config (``name`` + options) that training uses when the user gives none.
    default_encoder: Mapping[str, Any] = {}
    #: A folder of example files shipped with the plugin (package data), or None; ``anymal modalities
    #: --examples`` lists the files in it that this modality accepts, so users of an installed wheel find them.
    examples_dir: Path | None = None

    @abstractmethod
    def load(self, source: Any, **options: Any) -> torch.Tensor:
        """Parse and validate ``source`` (path, bytes or array). Bad input raises
        :class:`anymal_host.errors.InvalidSignalError` naming the problem and the fix."""

    @abstractmethod
    def preprocess(self, signal: torch.Tensor, **options: Any) -> torch.Tensor:
        """Resample / normalise / resize a loaded signal to what the encoder expects."""

    def collate(self, items: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch preprocessed items of varying length along dim 0: ``(batch [B, T, ...], mask [B, T])``."""
        return pad_sequences(items)

    @abstractmethod
    def build_encoder(self, config: Mapping[str, Any]) -> Encoder:
        """Build the encoder described by ``config`` (the adapter's ``encoder`` section), weights untrained or
        loaded from where the plugin ships them; the adapter's safetensors may overwrite them."""

    @abstractmethod
    def example_input(self) -> Any:
        """A small valid source (array or path) that ``load`` accepts: a smoke test for the data path (tests use
        it; so can a user checking an install)."""

    def example_files(self) -> list[Path]:
        """Example files a user can attach: the accepted files in :attr:`examples_dir`, else the example input
        when it is a file path, else none."""
        if self.examples_dir is not None and Path(self.examples_dir).is_dir():
            return sorted(p for p in Path(self.examples_dir).iterdir() if p.is_file() and self.accepts(p))
        example = self.example_input()
        return [Path(example)] if isinstance(example, (str, Path)) and Path(example).is_file() else []

    def accepts(self, path: str | Path | None = None, media_type: str | None = None) -> bool:
        """Whether a file (by extension) or a media type belongs to this modality."""
        if media_type is not None and media_type.lower() in self.media_types:
            return True
        if path is not None:
            suffix = Path(str(path)).suffix.lower()
            if suffix and suffix in self.file_extensions:
                return True
            guessed, _ = mimetypes.guess_type(str(path))
            if guessed is not None and guessed in self.media_types:
                return True
        return False

    def encode_sources(self, sources: Sequence[Any], **options: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``load`` + ``preprocess`` + ``collate`` for a list of sources."""
        return self.collate([self.preprocess(self.load(s, **options), **options) for s in sources])

    def __repr__(self) -> str:
        return f"<Modality {self.name!r}>"


@dataclass
class DatasetSpec:
    """A data set a plugin can build for training or evaluation."""

    # ``modality:name``, for example ``imu:hapt``.
    name: str
    # The modality its signals belong to.
    modality: str
    # ``build(split, **options)`` returns a sequence of items ``{"signal": Tensor (preprocessed),
    # "caption": str, ...}``; splits are at least ``train``, ``val`` and ``test``. An item may carry its own
    # ``"question"`` (or ``"questions"``, to choose from in training; the first is asked in evaluation), which
    # wins over ``questions`` below: one data set can then mix tasks.
    build: Callable[..., Sequence[Mapping[str, Any]]]
    # One line for listings.
    description: str = ""
    # Class names, when items carry a ``"label"`` (evaluation reports accuracy and a confusion matrix over them).
    labels: tuple[str, ...] = ()
    # Reads a class name out of generated text (None when it finds none); required for accuracy.
    parse_label: Callable[[str], str | None] | None = None
    # Questions to pair with the signal when training and evaluating ("What is the person doing?"); the
    # trainer falls back to generic ones when empty.
    questions: tuple[str, ...] = ()
    # Free-form facts shown in listings: licence, source, size, split rule.
    info: dict[str, Any] = field(default_factory=dict)


def pad_sequences(items: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad tensors of shape ``[T_i, ...]`` with zeros to ``[B, max T, ...]``; mask True on real steps."""
    import torch

    if not items:
        raise ValueError("cannot collate an empty batch: pass at least one item")
    longest = max(int(x.shape[0]) for x in items)
    batch = items[0].new_zeros((len(items), longest, *items[0].shape[1:]))
    mask = torch.zeros(len(items), longest, dtype=torch.bool)
    for i, x in enumerate(items):
        batch[i, : x.shape[0]] = x
        mask[i, : x.shape[0]] = True
    return batch, mask
