"""The LLM-embedding interface: a thin wrapper over a frozen transformers causal LM.

Everything the host needs from the LLM goes through :class:`LLM`: its hidden size, token embeddings, a forward
pass on ``inputs_embeds`` (training), generation from ``inputs_embeds`` (chat), the tokenizer with its chat
template, and a fingerprint of its embedding space that adapters are checked against.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from .errors import LLMLoadError
from .lora import LoraRouter

__all__ = ["LLM", "LLMOptions", "resolve_llm_name"]

LLM_ENV = "ANYMAL_LLM"


@dataclass
class LLMOptions:
    """How to load the host LLM."""

    # torch dtype name ("float32", "bfloat16", "float16"); None keeps float32 on CPU and bfloat16 on GPU.
    dtype: str | None = None
    # None, "4bit" (bitsandbytes nf4) or "8bit" (bitsandbytes LLM.int8).
    quantization: str | None = None
    # Module names bitsandbytes must never quantize; projectors and encoders live outside the LLM and are never
    # quantized anyway. None: the LM head, and with 4-bit also the attention's query and key projections
    # (``FULL_PRECISION_4BIT``).
    skip_modules: list[str] | None = None
    # "cpu", "cuda", "cuda:1"...; None picks CUDA when available.
    device: str | None = None
    # Hub revision (branch, tag or commit) to pin.
    revision: str | None = None
    # Run code from the model repo. Off unless the user asks: it executes code downloaded with the weights.
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if self.skip_modules is None:
            self.skip_modules = ["lm_head"] + (list(FULL_PRECISION_4BIT) if self.quantization == "4bit" else [])


#: Modules a 4-bit LLM keeps in full precision besides the LM head: the attention's query and key projections.
#: Which attention an adapter's few tokens get is decided there, and nf4 noise in them cost the IMU adapter
#: 8.3 points (90.0% -> 81.7% on 120 held-out windows); kept, 4-bit answers 92.5% for 13 M more full-precision
#: parameters (bench/quantize.py). Names another architecture lacks are simply not matched.
FULL_PRECISION_4BIT = ("q_proj", "k_proj")


def resolve_llm_name(name_or_path: str | os.PathLike[str] | None) -> str | None:
    """The LLM the user asked for: an explicit argument, else ``$ANYMAL_LLM``, else None (the default)."""
    if name_or_path:
        return str(name_or_path)
    return os.environ.get(LLM_ENV) or None


class LLM:
    """A frozen causal LM seen through its embedding space."""

    def __init__(self, model: Any, tokenizer: Any, name: str, revision: str | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.revision = revision
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._fingerprint: str | None = None
        self._fingerprint_lock = threading.Lock()
        self.model.requires_grad_(False)
        self.model.eval()
        # Stage-2 LoRAs hot-loaded beside each other, each generation row choosing its own (or none).
        self.loras = LoraRouter(self)

    # ----- loading --------------------------------------------------------------------------------------

    @classmethod
    def load(cls, name_or_path: str | os.PathLike[str] | None = None, options: LLMOptions | None = None,
             progress: bool = True) -> "LLM":
        """Load a Hub id or local path; ``None`` means ``$ANYMAL_LLM`` or the embedded default.

        A Hub id is read from the local Hugging Face cache when it is there, without asking the Hub; when it is
        not, the Hub is asked once, quickly, before downloading, so a missing network is reported in seconds
        instead of after huggingface_hub's retries (see :mod:`anymal_host.hub_access`)."""
        options = options or LLMOptions()
        source, display, from_hub = _source(resolve_llm_name(name_or_path), progress)
        kwargs: dict[str, Any] = {"revision": options.revision, "trust_remote_code": options.trust_remote_code}
        device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = getattr(torch, options.dtype) if options.dtype else (torch.bfloat16 if device.startswith("cuda") else torch.float32)
        model_kwargs = dict(kwargs, dtype=dtype, use_safetensors=True)
        if options.quantization:
            model_kwargs["quantization_config"] = _bnb_config(options, dtype)
            model_kwargs["device_map"] = {"": device}
        from transformers.utils import logging as hf_logging

        # The per-tensor "Loading weights" bar is noise for a sub-second local load; downloads keep theirs.
        hf_logging.disable_progress_bar()
        try:
            if options.quantization and not from_hub:  # a local checkpoint: through its quantized copy
                tokenizer, model = _quantized_local(source, kwargs, model_kwargs, options, device, progress)
            else:
                load = _from_hub if from_hub else _from_pretrained
                tokenizer, model = load(source, kwargs, model_kwargs)
        except LLMLoadError:
            raise
        except (OSError, ValueError) as exc:
            raise LLMLoadError(
                f"could not load the LLM {display!r}: {exc}. Pass a local folder (config.json + *.safetensors), "
                "a Hub id reachable from here, or leave --llm out to use the embedded default"
            ) from exc
        finally:
            hf_logging.enable_progress_bar()
        if not options.quantization:
            model.to(device)
        return cls(model, tokenizer, name=display, revision=options.revision)

    # ----- the embedding interface ----------------------------------------------------------------------

    @property
    def hidden_size(self) -> int:
        return int(self.model.get_input_embeddings().weight.shape[1])

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.get_input_embeddings().weight.dtype

    @property
    def chat_template(self) -> str | None:
        return getattr(self.tokenizer, "chat_template", None)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token ids ``[B, L]`` -> embeddings ``[B, L, H]``."""
        return self.model.get_input_embeddings()(input_ids.to(self.device))

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        """One forward pass on embeddings. Without labels: the model's output (logits). With labels (-100 =
        ignored): an object whose ``loss`` is the mean next-token loss over the labelled positions.

        The loss path computes logits only where a label is: the LM head (vocabulary x hidden) over every
        position is most of the cost of a short caption loss, and gradients only ever flow from labels.
        """
        inputs_embeds = inputs_embeds.to(self.dtype)
        if labels is None:
            return self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask)
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        hidden = base.get_decoder()(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state
        targets = labels[:, 1:].to(hidden.device)
        keep = targets != -100
        logits = base.get_output_embeddings()(hidden[:, :-1][keep]).float()
        loss = torch.nn.functional.cross_entropy(logits, targets[keep])
        return _LossOutput(loss=loss, logits=logits)

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Recompute each decoder layer's activations in the backward pass (training through the frozen LLM)
        instead of keeping them. The LLM stays in eval mode: only the layers' own flag that transformers checks
        is set, so dropout and every other train-mode behaviour stay off."""
        from transformers.modeling_layers import GradientCheckpointingLayer

        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        if enabled:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        elif any(getattr(m, "gradient_checkpointing", False) for m in base.modules()):
            base.gradient_checkpointing_disable()
        for module in base.modules():
            if isinstance(module, GradientCheckpointingLayer):
                module.training = enabled  # this module's flag only, not its children's (nn.Module.train would)

    @torch.inference_mode()
    def generate(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int = 64,
                 *, loras: Sequence[str | None] | None = None, **generate_kwargs: Any) -> list[str]:
        """Generate from left-padded embeddings; returns the decoded new text of each row. ``loras``: the
        hot-loaded LoRA each row uses (None: the frozen LLM), see :mod:`anymal_host.lora`."""
        generate_kwargs.setdefault("do_sample", False)
        if not generate_kwargs["do_sample"]:
            # Greedy decoding: drop sampling settings a model's generation_config may carry, to keep it quiet.
            generate_kwargs.update(temperature=None, top_p=None, top_k=None)
        with self.loras.serving():
            generate_kwargs.update(self.loras.generate_kwargs(inputs_embeds.shape[0], loras))
            output = self.model.generate(
                inputs_embeds=inputs_embeds.to(self.dtype), attention_mask=attention_mask.to(self.device),
                max_new_tokens=max_new_tokens, pad_token_id=self.tokenizer.pad_token_id, **generate_kwargs,
            )
        return [t.strip() for t in self.tokenizer.batch_decode(output, skip_special_tokens=True)]

    # ----- identity -------------------------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        """``sha256:...`` of what defines the embedding space: architecture, hidden size, vocabulary and the
        token-embedding weights (hashed as bfloat16, so float32 and bfloat16 loads of one checkpoint agree).
        Computed once per instance."""
        with self._fingerprint_lock:
            if self._fingerprint is None:
                self._fingerprint = embedding_fingerprint(self.model)
            return self._fingerprint

    @property
    def embedding_rms(self) -> float:
        """Root mean square of the input token embeddings: the scale adapter tokens are checked against."""
        weight = self.model.get_input_embeddings().weight
        return round(float(weight.detach().float().pow(2).mean().sqrt()), 6)

    def describe(self) -> dict[str, Any]:
        """What an adapter records about the LLM it was trained against."""
        return {"name": self.name, "revision": self.revision, "hidden_size": self.hidden_size,
                "fingerprint": self.fingerprint, "embedding_rms": self.embedding_rms}


@dataclass
class _LossOutput:
    loss: torch.Tensor
    logits: torch.Tensor  # [number of labelled positions, vocabulary]


def embedding_fingerprint(model: Any) -> str:
    config = model.config
    head = {
        "architectures": list(getattr(config, "architectures", None) or [type(model).__name__]),
        "hidden_size": int(model.get_input_embeddings().weight.shape[1]),
        "vocab_size": int(model.get_input_embeddings().weight.shape[0]),
    }
    digest = hashlib.sha256(json.dumps(head, sort_keys=True).encode())
    weight = model.get_input_embeddings().weight.detach().to("cpu", torch.bfloat16).contiguous()
    digest.update(weight.view(torch.int16).numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def _source(requested: str | None, progress: bool) -> tuple[str, str, bool]:
    """What to hand transformers for the LLM the user asked for, the name to show, and whether it is a Hub id.
    ``None`` is the embedded default, converted into the cache on first use."""
    if requested is None:
        from .default_llm import DEFAULT_LLM_NAME, default_llm_path

        return str(default_llm_path(progress=progress)), DEFAULT_LLM_NAME, False
    from adapters_hub.refs import InvalidRefError, refuse_ambiguous_name

    try:  # transformers itself would silently read the folder: name which one is meant
        refuse_ambiguous_name(requested, "--llm", "run from a folder without it (transformers reads a folder "
                                                  "of that name first)")
    except InvalidRefError as e:
        raise LLMLoadError(str(e)) from None
    if not _looks_like_path(requested):
        return requested, requested, True
    path = Path(requested).expanduser()
    if not path.exists():
        raise LLMLoadError(f"LLM path {requested!r} does not exist: pass an existing folder with config.json "
                           "and safetensors weights, or a Hub id such as HuggingFaceTB/SmolLM2-135M-Instruct")
    return str(path), requested, False


def _from_pretrained(source: str, kwargs: dict[str, Any], model_kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """The tokenizer and the model that transformers loads from ``source`` (a folder or a Hub id)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(source, **model_kwargs)
    return tokenizer, model


def _quantized_local(source: str, kwargs: dict[str, Any], model_kwargs: dict[str, Any], options: LLMOptions,
                     device: str, progress: bool) -> tuple[Any, Any]:
    """A local checkpoint loaded 4-bit / 8-bit from its quantized copy, written on first use (see
    :mod:`anymal_host.quantized_cache`): no full-precision copy of the model is held on the way."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .quantized_cache import load_quantized

    settings = {"quantization": options.quantization, "skip_modules": sorted(options.skip_modules),
                "dtype": str(model_kwargs["dtype"]), "device": torch.device(device).type,
                "trust_remote_code": bool(options.trust_remote_code)}
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)

    def load_copy(folder: Path) -> Any:  # its config.json carries the quantization_config
        return AutoModelForCausalLM.from_pretrained(
            folder, dtype=model_kwargs["dtype"], device_map=model_kwargs["device_map"], use_safetensors=True,
            trust_remote_code=options.trust_remote_code)

    model = load_quantized(source, settings, lambda: AutoModelForCausalLM.from_pretrained(source, **model_kwargs),
                           load_copy, progress)
    return tokenizer, model


def _from_hub(repo_id: str, kwargs: dict[str, Any], model_kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """A Hub model: from the local Hugging Face cache if it is there; else downloaded, once one quick request
    has shown the Hub answers (without it, an offline machine waits out huggingface_hub's retries)."""
    from .hub_access import hub_endpoint, hub_offline, hub_unreachable

    # transformers does not pass local_files_only on to its PEFT-adapter lookup: say it there too.
    local_model = dict(model_kwargs, local_files_only=True, adapter_kwargs={"local_files_only": True})
    try:
        return _from_pretrained(repo_id, dict(kwargs, local_files_only=True), local_model)
    except Exception as exc:  # noqa: BLE001 - whatever the cache lacks, the Hub is asked next (and errors there)
        if hub_offline():
            # transformers' own text for a cache miss speaks of a failed connection that was never tried
            what = f"is not in it ({_hf_cache()})" if not _cached(repo_id, kwargs.get("revision")) else f"failed: {exc}"
            raise LLMLoadError(
                f"HF_HUB_OFFLINE is set, so the LLM {repo_id!r} can only come from the local Hugging Face cache, and "
                f"it {what}. Unset HF_HUB_OFFLINE on a connected machine to download it once, pass a local folder "
                "(config.json + *.safetensors), or leave --llm out to use the embedded default"
            ) from exc
    problem = hub_unreachable(repo_id, kwargs.get("revision"))
    if problem is not None:
        raise LLMLoadError(
            f"cannot reach the Hugging Face Hub at {hub_endpoint()} to download the LLM {repo_id!r} ({problem}), "
            f"and it is not in the local cache ({_hf_cache()}). Connect to the network (or fix HF_ENDPOINT / the "
            "proxy), set HF_HUB_OFFLINE=1 to use a model downloaded before, pass a local folder (config.json + "
            "*.safetensors), or leave --llm out to use the embedded default"
        )
    return _from_pretrained(repo_id, kwargs, model_kwargs)


def _cached(repo_id: str, revision: str | None) -> bool:
    """Whether the local Hugging Face cache holds the repo's ``config.json`` (at ``revision``)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json", revision=revision), str)


def _hf_cache() -> str:
    """Where huggingface_hub keeps downloads (``$HF_HUB_CACHE``, ``$HF_HOME/hub``)."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _looks_like_path(name: str) -> bool:
    """A Hub id is ``name`` or ``org/name``; anything absolute, ``./``-relative, home-based or deeper is a path
    (the grammar adapter refs use too). A bare id that is also a folder was refused before this is asked."""
    from adapters_hub.refs import looks_like_path

    return looks_like_path(name)


def _bnb_config(options: LLMOptions, compute_dtype: torch.dtype) -> Any:
    from transformers import BitsAndBytesConfig

    if options.quantization == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype,
                                  llm_int8_skip_modules=list(options.skip_modules))
    if options.quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=list(options.skip_modules))
    raise ValueError(f"quantization {options.quantization!r} is not supported: use '4bit', '8bit' or leave it unset")
