"""Training: AnyMAL's stage 1 (alignment) and stage 2 (instruction tuning), one loop for every modality."""

from .config import TrainConfig
from .loop import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
