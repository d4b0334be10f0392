"""Tests of the Oops annotation reader, its filtering rules and clip labels."""

import json
import logging
import os

import pytest

from keras_memdpc.readers import read_oops
from keras_memdpc.readers import oops as oops_module
from keras_memdpc.readers.oops import oops_clip_label
from keras_memdpc.video_record import VideoRecord


def _entry(t, length, rel_t=None):
    """A transition_times.json entry; rel_t defaults to t / len (-1 stays -1)."""
    if rel_t is None:
        rel_t = [value / length if value >= 0 else -1.0 for value in t]
    return {"t": t, "len": length, "rel_t": rel_t, "n_notfound": t.count(-1),
            "stdev": 0.0, "rel_stdev": 0.0}


TIMES = {
    "Kept fail (2017)0": _entry([4.0, 1.0, 5.0], 10.0),  # median 4, mean 3.33
    "one worker saw none": _entry([-1.0, 2.0, 3.0], 10.0),  # median 2
    "shortest kept": _entry([1.6, 1.6, 1.6], 3.2),
    "longest kept": _entry([15.0, 15.0, 15.0], 30.0),
    "earliest kept": _entry([0.1, 0.1, 0.1], 10.0, rel_t=[0.01, 0.01, 0.01]),
    "no failure": _entry([-1.0, -1.0, 3.0], 10.0),  # median -1
    "too early": _entry([0.05, 0.05, 0.05], 10.0),  # rel_t 0.005
    "too late": _entry([9.95, 9.95, 9.95], 10.0),  # rel_t 0.995
    "too short": _entry([1.5, 1.5, 1.5], 3.0),
    "too long": _entry([15.0, 15.0, 15.0], 31.0),
    "val fail": _entry([2.5, 2.5, 2.5], 5.0),
}
TRAIN = ["Kept fail (2017)0.mp4", "one worker saw none", "shortest kept", "longest kept",
         "earliest kept", "no failure", "too early", "too late", "too short", "too long",
         "not annotated"]
VAL = ["val fail", "too short"]


@pytest.fixture
def oops(tmp_path):
    annotations = tmp_path / "annotations"
    annotations.mkdir()
    (annotations / "train.txt").write_text("\n".join(TRAIN) + "\n", encoding="utf-8")
    (annotations / "val.txt").write_text("\r\n".join(VAL) + "\r\n\r\n", encoding="utf-8")
    (annotations / "transition_times.json").write_text(json.dumps(TIMES), encoding="utf-8")
    videos = tmp_path / "oops_video"
    for subset, name in [("train", "Kept fail (2017)0"), ("train", "shortest kept"),
                         ("val", "val fail")]:
        os.makedirs(videos / subset, exist_ok=True)
        (videos / subset / f"{name}.mp4").write_bytes(b"")
    return str(annotations), str(videos)


def test_oops_keeps_videos_by_the_authors_rules(oops):
    annotations, videos = oops
    dataset = read_oops(annotations, videos)
    assert dataset.name == "oops"
    assert dataset.classes == ("intentional", "transitioning", "unintentional")

    def record(subset, name, t_fail, duration, rel_t=None):
        rel_t = t_fail / duration if rel_t is None else rel_t
        return VideoRecord(os.path.join(videos, subset, f"{name}.mp4"), -1,
                           {"t_fail": t_fail, "duration": duration, "rel_t": rel_t})

    assert dataset.subsets == {
        "train": [
            record("train", "Kept fail (2017)0", 4.0, 10.0),
            record("train", "one worker saw none", 2.0, 10.0),
            record("train", "shortest kept", 1.6, 3.2),
            record("train", "longest kept", 15.0, 30.0),
            record("train", "earliest kept", 0.1, 10.0, rel_t=0.01),
        ],
        "val": [record("val", "val fail", 2.5, 5.0)],
    }


def test_oops_logs_the_drop_count_of_each_reason(oops, caplog):
    caplog.set_level(logging.INFO, logger="absl")
    read_oops(*oops)
    messages = [record.getMessage() for record in caplog.records]
    train_message = next(message for message in messages if message.startswith("Oops train"))
    assert "kept 5 of 11 videos" in train_message
    for reason, count in [(oops_module.DROP_ABSENT, 1), (oops_module.DROP_NO_FAILURE, 1),
                          (oops_module.DROP_BORDER, 2), (oops_module.DROP_LENGTH, 2)]:
        assert f"{reason!r}: {count}" in train_message
    val_message = next(message for message in messages if message.startswith("Oops val"))
    assert "kept 1 of 2 videos" in val_message
    assert f"{{{oops_module.DROP_LENGTH!r}: 1}}" in val_message


def test_oops_rejects_malformed_entries(oops):
    annotations, videos = oops
    path = os.path.join(annotations, "transition_times.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(dict(TIMES, **{"val fail": {"t": [1.0], "len": 5.0}}), handle)
    with pytest.raises(ValueError, match=r"transition_times.json: entry 'val fail': 'rel_t'"):
        read_oops(annotations, videos)


@pytest.mark.parametrize("start, end, t_fail, label", [
    (0.0, 1.0, 2.0, 0),
    (1.0, 3.0, 2.0, 1),
    (3.0, 4.0, 2.0, 2),
    (0.0, 2.0, 2.0, 1),  # ends exactly at the failure
    (2.0, 3.0, 2.0, 1),  # starts exactly at the failure
    (0.0, 1.999, 2.0, 0),
    (2.001, 3.0, 2.0, 2),
])
def test_oops_clip_label(start, end, t_fail, label):
    assert oops_clip_label(start, end, t_fail) == label


def test_oops_clip_label_rejects_reversed_clips():
    with pytest.raises(ValueError):
        oops_clip_label(3.0, 2.0, 2.5)
