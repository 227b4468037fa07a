"""LoRA adapters of stage-2 packages, hot-loaded into the running LLM and chosen per request.

A stage-2 package carries a LoRA for the LLM (``lora/``, peft's own format). Unlike a projector, a LoRA lives
inside the one shared LLM, so the host never *switches* the LLM to a LoRA: every LoRA is loaded into it as a
named peft adapter beside the others, and each generation names, row by row, the LoRA that row uses
(peft's mixed-adapter inference, ``adapter_names``; ``"__base__"`` for a row without one). A request without a
LoRA therefore runs through the frozen LLM's own weights, however many LoRAs are loaded.

Structure changes (the first LoRA wraps the LLM in peft's ``PeftModel``, a later one adds its layers, an unload
deletes them, the last unload takes peft's layers out again) wait until no generation is running, and
generations wait for a change under way: :class:`LoraRouter` is a many-readers / one-writer gate.

Before any LoRA weight is read, :func:`check_lora` checks the folder against this LLM: peft's LoRA type, no
feature that would change weights outside the LoRA layers (``modules_to_save``...) or that mixed-adapter
inference cannot run (DoRA), the rank, and every tensor of the safetensors header: each names a linear module
this LLM has, with the shapes that module and the rank give.
"""

from __future__ import annotations

import json
import re
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from adapters_hub import DEFAULT_LIMITS, AdapterPackageError, PackageCorruptError, PackageLimits

if TYPE_CHECKING:
    import torch

    from adapters_hub.st_header import SafetensorsHeader

    from .llm import LLM

__all__ = ["LoraMismatchError", "LoraSpec", "LoraRouter", "check_lora", "read_lora_weights", "MAX_LORA_RANK",
           "BASE"]

#: Highest LoRA rank accepted: stage-2 LoRAs use 8 to 64; a rank in the thousands is a full-size matrix.
MAX_LORA_RANK = 256
#: peft's name for "no adapter" in a mixed batch.
BASE = "__base__"
CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
# Fields hot-loading honours (passed on to peft's LoraConfig).
_SUPPORTED = {"r", "lora_alpha", "target_modules", "exclude_modules", "rank_pattern", "alpha_pattern", "use_rslora",
              "fan_in_fan_out", "layers_to_transform", "layers_pattern", "bias", "task_type", "lora_dropout"}
# peft features a LoRA package may not use when served: each changes weights outside the LoRA layers (a copy of
# whole modules, new token rows, extra layers, biases of the base layers) or is one that peft's mixed-adapter
# inference cannot route per row. Any of them set (not None / False / empty) refuses the LoRA.
_REFUSED = ("modules_to_save", "trainable_token_indices", "layer_replication", "target_parameters", "lora_bias",
            "use_dora", "alora_invocation_tokens", "use_qalora", "use_bdlora", "arrow_config", "megatron_config")
_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<part>[AB])\.weight$")


class LoraMismatchError(AdapterPackageError):
    """A package's ``lora/`` folder cannot be served by this LLM: an unsupported peft feature, a target module
    this LLM lacks, or tensors whose shapes do not fit it."""


@dataclass(frozen=True)
class LoraSpec:
    """A LoRA folder that passed :func:`check_lora`."""

    folder: Path
    # adapter_config.json as written by peft
    config: dict[str, Any]
    # module name -> rank, for every module the LoRA changes
    ranks: dict[str, int]
    # the checked safetensors header of adapter_model.safetensors
    header: "SafetensorsHeader"


def check_lora(folder: str | Path, model: Any | None = None, *,
               limits: PackageLimits = DEFAULT_LIMITS) -> LoraSpec:
    """Check a peft LoRA folder without reading a weight: its config, and its safetensors header against
    ``model`` (the LLM's transformers model, or the ``PeftModel`` around it) when one is given."""
    from adapters_hub.files import read_regular_file
    from adapters_hub.st_header import read_safetensors_header

    folder = Path(folder)
    try:
        config = json.loads(read_regular_file(_member(folder, CONFIG_FILE), max_bytes=limits.max_config_bytes,
                                              what=f"lora/{CONFIG_FILE}"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PackageCorruptError(f"lora/{CONFIG_FILE} is not JSON ({e}): export the LoRA again with peft's "
                                  f"save_pretrained") from None
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        raise LoraMismatchError(f"lora/{CONFIG_FILE} is not a peft LoRA config (peft_type "
                                f"{config.get('peft_type') if isinstance(config, dict) else None!r}): only LoRA "
                                f"adapters are served; train stage 2 with `anymal train instruct`")
    unsupported = [k for k in _REFUSED if config.get(k) not in (None, False, [], {}, "")]
    if unsupported or config.get("bias", "none") != "none":
        names = unsupported + (["bias"] if config.get("bias", "none") != "none" else [])
        raise LoraMismatchError(f"the LoRA uses peft features a running host cannot serve per request "
                                f"({', '.join(names)}): they change weights outside the LoRA layers or are not "
                                f"supported by peft's mixed-adapter inference; train without them")
    rank = config.get("r")
    if not isinstance(rank, int) or isinstance(rank, bool) or not 1 <= rank <= MAX_LORA_RANK:
        raise LoraMismatchError(f"the LoRA's rank r={rank!r} is not an integer from 1 to {MAX_LORA_RANK}")
    header = read_safetensors_header(_member(folder, WEIGHTS_FILE), max_header_bytes=limits.max_header_bytes,
                                     name=f"lora/{WEIGHTS_FILE}")
    parts: dict[str, dict[str, tuple[int, ...]]] = {}
    for name, info in header.tensors.items():
        shape = tuple(info.shape)
        match = _KEY.match(name)
        if match is None:
            raise LoraMismatchError(f"lora/{WEIGHTS_FILE} holds {name!r}, which is not a LoRA matrix of a linear "
                                    f"layer (base_model.model.MODULE.lora_A.weight / lora_B.weight): only such "
                                    f"LoRAs are served")
        if len(shape) != 2:
            raise LoraMismatchError(f"lora/{WEIGHTS_FILE}: {name} has shape {list(shape)}, not a matrix")
        parts.setdefault(match["module"], {})[match["part"]] = shape
    if not parts:
        raise LoraMismatchError(f"lora/{WEIGHTS_FILE} holds no LoRA matrices: export the LoRA again")
    ranks: dict[str, int] = {}
    for module, pair in sorted(parts.items()):
        if set(pair) != {"A", "B"}:
            raise LoraMismatchError(f"lora/{WEIGHTS_FILE} has lora_{''.join(pair)} but not lora_"
                                    f"{'B' if 'A' in pair else 'A'} for {module}: export the LoRA again")
        (r_a, fan_in), (fan_out, r_b) = pair["A"], pair["B"]
        if r_a != r_b or not 1 <= r_a <= MAX_LORA_RANK:
            raise LoraMismatchError(f"lora/{WEIGHTS_FILE}: {module}'s lora_A {list(pair['A'])} and lora_B "
                                    f"{list(pair['B'])} do not share a rank from 1 to {MAX_LORA_RANK}")
        ranks[module] = r_a
    if model is not None:
        _check_against(model, parts, config)
    return LoraSpec(folder, config, ranks, header)


def _member(folder: Path, name: str) -> Path:
    """A LoRA file's real path: itself, or the blob a Hugging Face cache snapshot links it to (inside the
    package's cache only, as for every package file)."""
    from adapters_hub.files import member_path

    return member_path(folder.parent, f"{folder.name}/{name}")


def _check_against(model: Any, parts: dict[str, dict[str, tuple[int, ...]]], config: dict[str, Any]) -> None:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for module_name, pair in parts.items():
        try:
            module = base.get_submodule(module_name)
        except AttributeError:
            raise LoraMismatchError(f"the LoRA changes {module_name!r}, which this LLM ({type(base).__name__}) does "
                                    f"not have: it was trained for another architecture; train it again for this "
                                    f"LLM") from None
        module = getattr(module, "base_layer", module)  # a module a loaded LoRA already wraps
        fan_in, fan_out = getattr(module, "in_features", None), getattr(module, "out_features", None)
        if fan_in is None or fan_out is None:
            raise LoraMismatchError(f"the LoRA changes {module_name!r}, a {type(module).__name__} of this LLM, not "
                                    f"a linear layer: only LoRAs on linear layers are served")
        if config.get("fan_in_fan_out"):
            fan_in, fan_out = fan_out, fan_in
        if pair["A"][1] != fan_in or pair["B"][0] != fan_out:
            raise LoraMismatchError(f"the LoRA's matrices for {module_name} ({list(pair['A'])} and "
                                    f"{list(pair['B'])}) do not fit that layer of this LLM ({fan_in} in, "
                                    f"{fan_out} out): it was trained for another LLM size")


def read_lora_weights(spec: LoraSpec, *, limits: PackageLimits = DEFAULT_LIMITS) -> dict[str, "torch.Tensor"]:
    """Read the LoRA's safetensors once: the bytes read are the bytes whose header was checked; NaN, inf and
    absurd values are refused."""
    from adapters_hub.package import check_weight_values, read_as_checked

    name = f"lora/{WEIGHTS_FILE}"
    tensors = read_as_checked(_member(spec.folder, WEIGHTS_FILE), spec.header, name=name, limits=limits)
    not_float = sorted(k for k, t in tensors.items() if not t.is_floating_point())
    if not_float:
        raise LoraMismatchError(f"{name}: {', '.join(not_float[:3])} are not floating point: export the LoRA "
                                f"again with peft's save_pretrained")
    check_weight_values(tensors, limits, name)
    return tensors


class LoraRouter:
    """The LoRAs loaded into one :class:`~anymal_host.llm.LLM`, and the gate between generations (many at
    once) and LoRA loads and unloads (one at a time, when no generation runs)."""

    def __init__(self, llm: "LLM") -> None:
        self._llm = llm
        self._condition = threading.Condition()
        self._readers = 0
        self._writing = False
        self._names: set[str] = set()
        self._wrapped: Any = None  # the transformers model the first LoRA wrapped

    @property
    def names(self) -> frozenset[str]:
        """The LoRAs loaded now, by their peft adapter name."""
        return frozenset(self._names)

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Held by every generation: LoRA loads and unloads wait until none runs."""
        with self._condition:
            self._condition.wait_for(lambda: not self._writing)
            self._readers += 1
        try:
            yield
        finally:
            with self._condition:
                self._readers -= 1
                self._condition.notify_all()

    @contextmanager
    def _changing(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._writing)
            self._writing = True  # new generations wait from now on
            self._condition.wait_for(lambda: self._readers == 0)
        try:
            yield
        finally:
            with self._condition:
                self._writing = False
                self._condition.notify_all()

    def add(self, name: str, spec: LoraSpec, weights: dict[str, "torch.Tensor"]) -> None:
        """Load a checked LoRA as the peft adapter ``name``; on any failure nothing is left of it."""
        from .extras import quiet_bitsandbytes

        quiet_bitsandbytes(None)  # peft imports bitsandbytes, which prints a notice on machines without a GPU
        from peft import LoraConfig, PeftModel, set_peft_model_state_dict

        fields = {k: v for k, v in spec.config.items() if k in _SUPPORTED}
        config = LoraConfig(**fields, inference_mode=True)
        with self._changing():
            if name in self._names:
                raise ValueError(f"a LoRA named {name!r} is already loaded")
            model = self._llm.model
            try:
                if self._wrapped is None:
                    self._wrapped = model
                    with warnings.catch_warnings():  # transformers' deprecation notes on what peft calls
                        warnings.simplefilter("ignore", FutureWarning)
                        model = self._llm.model = PeftModel(model, config, adapter_name=name)
                else:
                    model.add_adapter(name, config)
                self._names.add(name)
                result = set_peft_model_state_dict(model, weights, adapter_name=name)
                unfilled = [k for k in result.missing_keys if f".{name}." in k or k.endswith(f".{name}")]
                if result.unexpected_keys or unfilled:
                    raise LoraMismatchError("the LoRA's tensors do not fill the layers its config targets ("
                                            + "; ".join(p for p in (
                                                f"unfilled {', '.join(unfilled[:3])}" if unfilled else "",
                                                f"unexpected {', '.join(result.unexpected_keys[:3])}"
                                                if result.unexpected_keys else "") if p)
                                            + "): export the LoRA again with peft's save_pretrained")
                model.requires_grad_(False)
                model.eval()
            except BaseException:
                self._remove(name)
                raise

    def remove(self, name: str) -> None:
        """Delete the LoRA ``name`` and its weights; the last one out takes peft's layers out of the LLM."""
        with self._changing():
            self._remove(name)

    def _remove(self, name: str) -> None:
        model = self._llm.model
        if name in getattr(model, "peft_config", {}):
            with warnings.catch_warnings():  # "active adapter deleted": rows name their LoRA, none is "active"
                warnings.simplefilter("ignore", UserWarning)
                model.delete_adapter(name)
        self._names.discard(name)
        if not self._names and self._wrapped is not None:
            self._llm.model = model.unload()  # the original modules back, without a LoRA layer
            self._wrapped = None

    def generate_kwargs(self, rows: int, loras: Sequence[str | None] | None) -> dict[str, Any]:
        """The ``adapter_names`` of a batch of ``rows`` (call within :meth:`serving`): each row's LoRA, or the
        frozen LLM for a row without one. Nothing while no LoRA is loaded."""
        if loras is not None and len(loras) != rows:
            raise ValueError(f"{len(loras)} LoRA choices for a batch of {rows} rows")
        wanted = [name for name in (loras or ()) if name is not None]
        missing = sorted(set(wanted) - self._names)
        if missing:
            from .errors import AdapterNotFoundError

            raise AdapterNotFoundError(f"the LoRA {', '.join(missing)} is no longer loaded (its adapter was "
                                       f"unloaded or replaced after the request was prepared): send the request again")
        if not self._names:
            return {}
        return {"adapter_names": [name or BASE for name in (loras or [None] * rows)]}
