"""Preparing real clips and frame folders as sharded TFRecords: content, report, resume."""

import functools
import importlib.util
import json
import os
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_memdpc.data_preparation import (
    encode_in_order,
    encode_video,
    plan_shards,
    prepare_dataset,
)
from keras_memdpc.video_decoding import decode_video
from keras_memdpc.video_record import VideoDataset, VideoRecord
from keras_memdpc.video_tfrecord import parse_sequence_example, read_dataset_json, shard_pattern
from tests.conftest import SHARED_DATA

ROOT = pathlib.Path(__file__).resolve().parents[1]
VIDEOS = SHARED_DATA / "videos"
FOLDERS = SHARED_DATA / "frames" / "jpeg_folders"

requires_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"no shared data at {SHARED_DATA}")


def video(name, label):
    return VideoRecord(str(VIDEOS / name), label)


def frame_folder(name, label, first, last):
    return VideoRecord(str(FOLDERS / name), label, {"first_frame": first, "last_frame": last})


def cut_copy(source, destination, fraction=0.4):
    data = source.read_bytes()
    destination.write_bytes(data[: int(len(data) * fraction)])
    return str(destination)


def read_records(output_dir, modality):
    """{path: parsed example as numpy} of every shard of every subset."""
    files = sorted(tf.io.gfile.glob(shard_pattern(str(output_dir), modality, "*")))
    records = {}
    for serialized in tf.data.TFRecordDataset(files):
        example = {key: value.numpy() for key, value in parse_sequence_example(serialized).items()}
        records[example["video/path"].decode()] = example
    return records


def tree_bytes(folder):
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(pathlib.Path(folder).rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Real clips, frame folders and broken files, prepared at short side 64."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"no shared data at {SHARED_DATA}")
    bad = tmp_path_factory.mktemp("bad")
    garbage = bad / "x.mp4"
    garbage.write_bytes(np.random.default_rng(0).bytes(20000))
    broken = {
        "cut_avi": cut_copy(VIDEOS / "v_ApplyEyeMakeup_test.avi", bad / "cut.avi"),
        "cut_mp4": cut_copy(VIDEOS / "short_36_frames.mp4", bad / "cut.mp4"),
        "garbage": str(garbage),
        "missing": str(bad / "missing.mp4"),
    }
    dataset = VideoDataset("mixed", ("a", "b"), {
        "train": [
            video("v_ApplyEyeMakeup_test.avi", 0), video("flipping_pancake.mkv", 1),
            video("short_36_frames.mp4", 1), frame_folder("jumping/0001", 0, 1, 17),
            frame_folder("running/0001", 1, 1, 15), VideoRecord(broken["cut_avi"], 0),
            VideoRecord(broken["garbage"], 1),
        ],
        "test": [
            video("ntu_drink_water_1080p.avi", 0), VideoRecord(broken["cut_mp4"], 1),
            VideoRecord(broken["missing"], 0), frame_folder("jumping/0002", 0, 1, 18),
        ],
    })
    output_dir = tmp_path_factory.mktemp("prepared")
    summary = prepare_dataset(dataset, output_dir, short_side=64, workers=1,
                              videos_per_shard=3)
    return output_dir, summary, broken


@requires_shared_data
def test_records_parse_back_with_frames_labels_and_sizes(prepared):
    output_dir, _, broken = prepared
    expected = {  # path: (frames, label, height, width, fps)
        str(VIDEOS / "v_ApplyEyeMakeup_test.avi"): (164, 0, 64, 85, 25.0),
        str(VIDEOS / "flipping_pancake.mkv"): (310, 1, 64, 114, 30.0),
        str(VIDEOS / "short_36_frames.mp4"): (36, 1, 64, 85, 30.02),
        str(VIDEOS / "ntu_drink_water_1080p.avi"): (103, 0, 64, 114, 30.0),
        str(FOLDERS / "jumping/0001"): (17, 0, 64, 114, 25.0),  # 426x240 JPEGs
        str(FOLDERS / "running/0001"): (15, 1, 64, 114, 25.0),  # 320x180 JPEGs
        str(FOLDERS / "jumping/0002"): (18, 0, 64, 114, 25.0),
    }
    records = read_records(output_dir, "rgb")
    assert set(records) == set(expected) | {broken["cut_avi"]}
    for path, (frames, label, height, width, fps) in expected.items():
        record = records[path]
        assert record["video/num_frames"] == frames == len(record["frames/encoded"]), path
        assert record["video/label"] == label
        assert (record["video/height"], record["video/width"]) == (height, width)
        assert record["video/fps"] == pytest.approx(fps, abs=0.01)
        assert record["video/modality"] == b"rgb"
        last = tf.io.decode_jpeg(record["frames/encoded"][-1])
        assert last.shape == (height, width, 3)
    folder = records[str(FOLDERS / "jumping/0001")]
    assert json.loads(folder["video/metadata"]) == {"first_frame": 1, "last_frame": 17}
    cut = records[broken["cut_avi"]]
    assert 10 < cut["video/num_frames"] < 0.6 * 164


@requires_shared_data
def test_stored_jpeg_is_the_decoded_resized_frame(prepared):
    output_dir, _, _ = prepared
    path = str(VIDEOS / "flipping_pancake.mkv")
    stored = read_records(output_dir, "rgb")[path]["frames/encoded"][200]
    jpeg = tf.io.decode_jpeg(stored).numpy().astype(np.float32)
    frame = decode_video(path, short_side=64).frames[200].astype(np.float32)
    assert np.abs(jpeg - frame).mean() < 4.0  # JPEG error at quality 90, 4:2:0 chroma
    other = decode_video(path, short_side=64).frames[20].astype(np.float32)
    assert np.abs(jpeg - other).mean() > 3 * np.abs(jpeg - frame).mean()


@requires_shared_data
def test_dataset_json_report_and_summary(prepared):
    output_dir, summary, broken = prepared
    info = read_dataset_json(output_dir)
    assert info["name"] == "mixed" and info["classes"] == ["a", "b"]
    assert info["short_side"] == 64 and info["modalities"] == ["rgb"]
    records = read_records(output_dir, "rgb")
    cut_frames = int(records[broken["cut_avi"]]["video/num_frames"])
    train_frames = 164 + 310 + 36 + 17 + 15 + cut_frames
    assert info["subsets"]["train"]["videos"] == 6
    assert info["subsets"]["train"]["frames"] == train_frames
    assert info["subsets"]["train"]["shards"] == 3  # 7 videos, at most 3 per shard
    assert info["subsets"]["test"]["videos"] == 2
    assert info["subsets"]["test"]["frames"] == 103 + 18
    assert info["subsets"]["test"]["shards"] == 2
    assert len(tf.io.gfile.glob(shard_pattern(str(output_dir), "rgb", "train"))) == 3

    report = json.loads((output_dir / "report.json").read_text())
    skipped = {item["path"]: item["reason"] for item in report["skipped"]}
    assert skipped == {broken["garbage"]: "unreadable", broken["cut_mp4"]: "unreadable",
                       broken["missing"]: "missing"}
    assert report["truncated"] == [{"path": broken["cut_avi"], "subset": "train",
                                    "frames": cut_frames, "expected_frames": 164}]
    text = (output_dir / "report.txt").read_text()
    for path, reason in skipped.items():
        assert f"{path}: {reason}" in text

    shard_bytes = sum(os.path.getsize(path) for path in
                      tf.io.gfile.glob(shard_pattern(str(output_dir), "rgb", "*")))
    assert summary["videos"] == 8 and summary["frames"] == train_frames + 121
    assert summary["skipped"] == 3 and summary["truncated"] == 1
    assert summary["skip_reasons"] == {"unreadable": 2, "missing": 1}
    assert summary["bytes"] == shard_bytes
    assert summary["shards_written"] == 5 and summary["shards_kept"] == 0


def test_shard_plan_is_deterministic_complete_and_mixes_classes():
    records = [VideoRecord(f"/v/{label}/{i}.mp4", label) for label in (0, 1) for i in range(20)]
    records.append(VideoRecord("/v/1/20.mp4", 1))
    dataset = VideoDataset("d", ("a", "b"), {"train": records, "test": records[:3], "val": []})
    plans = plan_shards(dataset, videos_per_shard=10)
    assert plans == plan_shards(dataset, videos_per_shard=10)
    train = [plan for plan in plans if plan.subset == "train"]
    assert [plan.index for plan in train] == [0, 1, 2, 3, 4]
    assert {plan.num_shards for plan in train} == {5}
    assert sorted(len(plan.records) for plan in train) == [8, 8, 8, 8, 9]
    assert sorted(r.path for plan in train for r in plan.records) == sorted(r.path for r in records)
    assert all({r.label for r in plan.records} == {0, 1} for plan in train)
    assert [plan.subset for plan in plans].count("test") == 1
    assert "val" not in {plan.subset for plan in plans}
    assert train[0].name == "train-00000-of-00005"


@requires_shared_data
def test_rerun_redoes_only_missing_or_interrupted_shards(tmp_path):
    dataset = VideoDataset("small", ("jumping", "running"), {"train": [
        frame_folder("jumping/0001", 0, 1, 17), frame_folder("jumping/0002", 0, 1, 18),
        frame_folder("running/0001", 1, 1, 15), frame_folder("running/0002", 1, 1, 15),
        video("short_36_frames.mp4", 1),
    ]})
    prepare = functools.partial(prepare_dataset, dataset, tmp_path, short_side=64,
                                videos_per_shard=1)
    prepare(workers=1)
    clean = tree_bytes(tmp_path)
    rgb = tmp_path / "rgb"
    # Shard 1 deleted by hand; shard 3 interrupted while being written.
    (rgb / "train-00001-of-00005.tfrecord").unlink()
    (rgb / "train-00003-of-00005.tfrecord").unlink()
    (tmp_path / "shards" / "train-00003-of-00005.json").unlink()
    (rgb / "train-00003-of-00005.tfrecord.incomplete").write_bytes(b"half a shard")
    kept = {index: os.stat(rgb / f"train-0000{index}-of-00005.tfrecord") for index in (0, 2, 4)}

    summary = prepare(workers=2)
    assert (summary["shards_written"], summary["shards_kept"]) == (2, 3)
    assert summary["videos"] == 5
    for index, before in kept.items():
        after = os.stat(rgb / f"train-0000{index}-of-00005.tfrecord")
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert tree_bytes(tmp_path) == clean


@requires_shared_data
def test_resuming_with_other_settings_is_refused(tmp_path):
    record = frame_folder("running/0002", 1, 1, 15)
    dataset = VideoDataset("one", ("jumping", "running"), {"train": [record]})
    prepare_dataset(dataset, tmp_path, short_side=64, workers=1)
    with pytest.raises(ValueError, match="short_side: 64 there, 32 now"):
        prepare_dataset(dataset, tmp_path, short_side=32, workers=1)
    with pytest.raises(ValueError, match="flow"):
        prepare_dataset(dataset, tmp_path, short_side=64, flow="dis", workers=1)
    relabelled = VideoDataset("one", ("jumping", "running"),
                              {"train": [VideoRecord(record.path, 0, record.metadata)]})
    with pytest.raises(ValueError, match="dataset_fingerprint"):
        prepare_dataset(relabelled, tmp_path, short_side=64, workers=1)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "dataset.json").write_text("{}")
    with pytest.raises(ValueError, match="not prepared by prepare_dataset"):
        prepare_dataset(dataset, foreign, short_side=64, workers=1)


@requires_shared_data
def test_dis_flow_shards_hold_one_frame_less_per_video(tmp_path):
    single = frame_folder("jumping/0002", 0, 5, 5)
    dataset = VideoDataset("flow", ("a", "b"), {"train": [
        video("short_36_frames.mp4", 1), frame_folder("jumping/0001", 0, 1, 17), single]})
    summary = prepare_dataset(dataset, tmp_path, short_side=64, flow="dis", workers=1)
    rgb, flow = read_records(tmp_path, "rgb"), read_records(tmp_path, "flow_dis")
    assert set(flow) == set(rgb) == {str(VIDEOS / "short_36_frames.mp4"),
                                     str(FOLDERS / "jumping/0001")}
    for path, record in flow.items():
        assert record["video/num_frames"] == len(record["frames/encoded"])
        assert record["video/num_frames"] == rgb[path]["video/num_frames"] - 1
        assert record["video/modality"] == b"flow_dis"
        image = tf.io.decode_jpeg(record["frames/encoded"][0]).numpy()
        assert image.shape == (rgb[path]["video/height"], rgb[path]["video/width"], 3)
        assert image[..., 2].max() <= 4  # zeros up to JPEG error
    info = read_dataset_json(tmp_path)
    assert info["modalities"] == ["rgb", "flow_dis"]
    assert info["subsets"]["train"]["flow_frames"] == 35 + 16
    assert summary["skip_reasons"] == {"a single frame: no flow": 1}


@requires_shared_data
def test_encode_video_pickles_for_other_runners():
    encode = pickle.loads(pickle.dumps(functools.partial(encode_video, short_side=32)))
    encoded = encode(frame_folder("running/0001", 1, 3, 9))
    assert encoded.skip_reason is None and encoded.frames == 7 and not encoded.truncated
    parsed = parse_sequence_example(encoded.examples["rgb"])
    assert int(parsed["video/num_frames"]) == 7 and int(parsed["video/height"]) == 32


@requires_shared_data
def test_encode_video_with_tvl1_flow():
    encoded = encode_video(frame_folder("running/0001", 1, 3, 6), short_side=32, flow="tvl1")
    assert set(encoded.examples) == {"rgb", "flow_tvl1"}
    flow = parse_sequence_example(encoded.examples["flow_tvl1"])
    assert int(flow["video/num_frames"]) == 3 and flow["video/modality"] == b"flow_tvl1"
    assert tf.io.decode_jpeg(flow["frames/encoded"][0]).shape == (32, 57, 3)  # 320x180


def die_on_broken(record):
    """Stands in for a decoder that crashes its process."""
    if record.path == "broken.mp4":
        os._exit(3)
    return record.path


def test_a_dying_worker_stops_the_run_with_the_videos_in_flight():
    records = [VideoRecord(name, 0) for name in ("a.mp4", "broken.mp4", "c.mp4")]
    results = []
    with pytest.raises(RuntimeError, match="worker process died.*broken.mp4.*rerun to resume"):
        for result in encode_in_order(die_on_broken, records, workers=2):
            results.append(result)
    assert results in ([], ["a.mp4"])


def run_script(*flags):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                       PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                                os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, str(ROOT / "train" / "prepare_data.py"), *flags],
                          capture_output=True, text=True, env=environment, cwd=ROOT,
                          timeout=120)


@requires_shared_data
def test_script_prepares_a_folder_layout(tmp_path):
    layout = {"eye": ["v_ApplyEyeMakeup_test.avi", "short_36_frames.mp4"],
              "lifting": ["clean_and_jerk.mp4"]}
    for class_name, names in layout.items():
        (tmp_path / "videos" / class_name).mkdir(parents=True)
        for name in names:
            (tmp_path / "videos" / class_name / name).symlink_to(VIDEOS / name)
    output_dir = tmp_path / "out"
    result = run_script("--dataset=folder", f"--video_dir={tmp_path / 'videos'}",
                        f"--output_dir={output_dir}", "--short_side=64", "--workers=1",
                        "--videos_per_shard=2")
    assert result.returncode == 0, result.stderr[-3000:]
    info = read_dataset_json(output_dir)
    assert info["name"] == "folder" and info["classes"] == ["eye", "lifting"]
    assert info["subsets"]["train"] == {"videos": 3, "frames": 164 + 36 + 300, "shards": 2,
                                        "skipped": 0, "truncated": 0}
    labels = {pathlib.Path(path).name: int(record["video/label"])
              for path, record in read_records(output_dir, "rgb").items()}
    assert labels == {"v_ApplyEyeMakeup_test.avi": 0, "short_36_frames.mp4": 0,
                      "clean_and_jerk.mp4": 1}


def test_script_names_the_missing_flag(tmp_path):
    result = run_script("--dataset=ucf101", f"--video_dir={tmp_path}",
                        f"--output_dir={tmp_path / 'out'}")
    assert result.returncode != 0
    assert "--split_dir is required for --dataset=ucf101" in result.stderr + result.stdout
    assert not (tmp_path / "out").exists()


def test_script_asks_for_apache_beam_when_a_beam_runner_lacks_it(tmp_path):
    if importlib.util.find_spec("apache_beam") is not None:
        pytest.skip("apache_beam is installed")
    (tmp_path / "videos" / "a").mkdir(parents=True)
    result = run_script("--dataset=folder", f"--video_dir={tmp_path / 'videos'}",
                        f"--output_dir={tmp_path / 'out'}", "--runner=direct")
    assert result.returncode == 1
    assert "--runner=direct needs Apache Beam" in result.stderr
    assert "pip install keras_memdpc[beam]" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
