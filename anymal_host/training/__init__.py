"""Training: AnyMAL's stage 1 (alignment) and stage 2 (instruction tuning), one loop for every modality."""

from .config import TrainConfig
from .accuracy import NotLearningWarning
from .loop import TrainResult, train

__all__ = ["NotLearningWarning", "TrainConfig", "TrainResult", "train"]
