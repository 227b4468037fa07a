"""The imu:hapt data set, built from the real UCI HAPT recordings (cached npz), and the shipped examples."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
import torch

from anymal_plugin_imu import ACTIVITIES, EXAMPLES_DIR, ImuModality, activity_from_text
from anymal_plugin_imu import hapt

try:
    hapt.hapt_pickle_path()
except hapt.HaptDataError as exc:  # a third party without the data package still runs the other tests
    pytest.skip(str(exc), allow_module_level=True)


@pytest.fixture(scope="module")
def recordings() -> hapt.HaptRecordings:
    return hapt.load_recordings()  # converts the pickle once into $ANYMAL_HOME/datasets, then reads the npz


def test_recordings_match_the_published_facts(recordings):
    assert recordings.signals.shape == (1_122_772, 6) and recordings.signals.dtype == np.float32
    assert len(recordings.session_users) == 61 and set(recordings.session_users.tolist()) == set(range(1, 31))
    assert recordings.starts[-1] == len(recordings.labels)
    assert set(np.unique(recordings.labels).tolist()) == {-1, *range(1, 13)}
    assert np.isfinite(recordings.signals).all()


def test_splits_are_disjoint_by_person_and_cover_everyone():
    train, val, test = (set(hapt.split_users(s)) for s in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == set(range(1, 31))
    assert len(test) == 9 and len(val) == 3
    with pytest.raises(ValueError, match="unknown HAPT split 'dev'"):
        hapt.split_users("dev")


@pytest.mark.parametrize("split, count", [("train", 6127), ("val", 1016), ("test", 2874)])
def test_windows_per_split(recordings, split, count):
    x, y, users = hapt.hapt_windows(split, recordings=recordings)
    assert x.shape == (count, 128, 6) and x.dtype == np.float32
    assert set(users.tolist()) == set(hapt.split_users(split))
    assert set(y.tolist()) == set(range(1, 7))  # every class in every split
    assert np.bincount(y, minlength=7)[1:].min() >= 100


def test_windows_carry_one_activity_label(recordings):
    x, y, users = hapt.hapt_windows("val", recordings=recordings)
    # find each window back in the recordings and check its labels
    session_of = {int(u): [] for u in users}
    for i, u in enumerate(recordings.session_users.tolist()):
        session_of.setdefault(u, []).append(i)
    for k in range(0, len(x), 97):
        for i in session_of[int(users[k])]:
            lo, hi = recordings.starts[i], recordings.starts[i + 1]
            hits = np.flatnonzero((recordings.signals[lo:hi - 127, 0] == x[k, 0, 0])
                                  & (recordings.signals[lo:hi - 127, 1] == x[k, 0, 1]))
            for h in hits:
                if np.array_equal(recordings.signals[lo + h:lo + h + 128], x[k]):
                    assert (recordings.labels[lo + h:lo + h + 128] == y[k]).all()
                    break
            else:
                continue
            break
        else:
            pytest.fail(f"window {k} not found in the recordings of user {users[k]}")


def test_build_items(recordings):
    items = hapt.build("test")
    assert len(items) == 2874
    first = items[0]
    assert set(first) == {"signal", "caption", "label", "label_id", "user", "source"}
    assert first["signal"].shape == (128, 6) and first["signal"].dtype == torch.float32
    assert {it["label"] for it in items} == set(ACTIVITIES)
    assert {it["user"] for it in items} == set(hapt.TEST_USERS)
    for it in items[::50]:
        assert activity_from_text(it["caption"]) == it["label"] == ACTIVITIES[it["label_id"]]
    # the stored signal is exactly what the modality makes of the raw window
    x, _, _ = hapt.hapt_windows("test", recordings=recordings)
    imu = ImuModality()
    torch.testing.assert_close(first["signal"], imu.preprocess(imu.load(x[0])))
    # "source" is that raw window, what the modality loads back (anymal instructions writes it as .npy)
    assert np.array_equal(first["source"], x[0])
    torch.testing.assert_close(first["signal"], imu.preprocess(imu.load(first["source"])))


def test_build_is_deterministic_and_limit_is_balanced():
    a, b = hapt.build("val", seed=1, limit=60), hapt.build("val", seed=1, limit=60)
    assert [i["caption"] for i in a] == [i["caption"] for i in b]
    assert all(torch.equal(i["signal"], j["signal"]) for i, j in zip(a, b))
    counts = {name: sum(i["label"] == name for i in a) for name in ACTIVITIES}
    assert len(a) == 60 and set(counts.values()) == {10}
    c = hapt.build("val", seed=2, limit=60)
    assert [i["caption"] for i in a] != [i["caption"] for i in c]
    assert hapt.build("val", sample_rate=50, max_windows=1)  # adapter preprocessing options are tolerated


def test_npz_cache_is_plain_arrays():
    with np.load(hapt.hapt_npz_path(), allow_pickle=False) as data:
        assert {"signals", "labels", "starts", "session_users", "format_version", "source_sha256"} <= set(data.files)


def test_unpickler_refuses_anything_off_the_allow_list():
    payload = pickle.dumps(__import__("os").getcwd, protocol=2)  # a global outside the allow-list
    with pytest.raises(pickle.UnpicklingError, match="not on the allow-list"):
        hapt._HaptUnpickler(__import__("io").BytesIO(payload)).load()


def test_convert_writes_atomically(tmp_path, recordings):
    out = hapt.convert_pickle(hapt.hapt_pickle_path(), tmp_path / "hapt.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["hapt.npz"]  # no temporary file left behind
    with np.load(out, allow_pickle=False) as data:
        np.testing.assert_array_equal(data["labels"], recordings.labels)


@pytest.mark.parametrize("activity", ACTIVITIES)
def test_shipped_examples_are_test_user_recordings(recordings, activity):
    path = EXAMPLES_DIR / f"{activity.replace(' ', '_')}.csv"
    header = path.read_text().splitlines()[:3]
    user = int(header[0].split("user ")[1].split(",")[0])
    assert user in hapt.TEST_USERS and header[1] == "# sample_rate=50"
    signal = ImuModality().load(path)
    assert signal.shape == (300, 6)
    # the rows are a stretch of that user's recordings, labelled with that activity throughout
    label_id = ACTIVITIES.index(activity) + 1
    for i in np.flatnonzero(recordings.session_users == user):
        lo, hi = recordings.starts[i], recordings.starts[i + 1]
        close = np.flatnonzero(np.abs(recordings.signals[lo:hi, 0] - signal[0, 0].item()) < 1e-6)
        for h in close:
            block = recordings.signals[lo + h:lo + h + 300]
            if len(block) == 300 and np.allclose(block, signal.numpy(), atol=1e-6):
                assert (recordings.labels[lo + h:lo + h + 300] == label_id).all()
                return
    pytest.fail(f"{path.name} is not a stretch of user {user}'s recordings")
