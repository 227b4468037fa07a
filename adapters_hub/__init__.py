"""The adapter package format and the hubs it lives on. No model code lives here."""

from .config import SCHEMA_VERSION, AdapterConfig, EncoderRef, LLMRef, ProjectorSpec

__all__ = ["SCHEMA_VERSION", "AdapterConfig", "EncoderRef", "LLMRef", "ProjectorSpec"]
