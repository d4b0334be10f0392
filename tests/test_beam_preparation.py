"""The Beam runner of preparation on real clips: the local runner's files, report, resume."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

pytest.importorskip("apache_beam")

from keras_memdpc.beam_preparation import prepare_dataset_with_beam  # noqa: E402
from keras_memdpc.data_preparation import prepare_dataset  # noqa: E402
from keras_memdpc.video_record import VideoDataset, VideoRecord  # noqa: E402
from keras_memdpc.video_tfrecord import parse_sequence_example  # noqa: E402
from tests.conftest import SHARED_DATA  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
VIDEOS = SHARED_DATA / "videos"
FOLDERS = SHARED_DATA / "frames" / "jpeg_folders"

requires_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"no shared data at {SHARED_DATA}")


def shard_records(output_dir, modality):
    """{shard file name: [(path, label, num_frames, frame JPEG bytes), ...] in file order}."""
    shards = {}
    for path in sorted(pathlib.Path(output_dir, modality).glob("*.tfrecord")):
        shards[path.name] = []
        for serialized in tf.data.TFRecordDataset(str(path)):
            example = parse_sequence_example(serialized)
            shards[path.name].append((
                example["video/path"].numpy().decode(),
                int(example["video/label"]),
                int(example["video/num_frames"]),
                tuple(example["frames/encoded"].numpy()),
            ))
    return shards


def tree_bytes(folder):
    """{relative path: bytes} of every file under `folder` (any tf.io.gfile filesystem)."""
    folder = str(folder)
    files = {}
    for directory, _, names in tf.io.gfile.walk(folder):
        for name in names:
            path = os.path.join(directory, name)
            with tf.io.gfile.GFile(path, "rb") as f:
                files[os.path.relpath(path, folder)] = f.read()
    return files


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Three real clips, a garbage file and a frame folder, by Beam and by the local runner."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"no shared data at {SHARED_DATA}")
    garbage = tmp_path_factory.mktemp("bad") / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).bytes(20000))
    dataset = VideoDataset("clips", ("a", "b"), {
        "train": [VideoRecord(str(VIDEOS / "v_ApplyEyeMakeup_test.avi"), 0),
                  VideoRecord(str(VIDEOS / "arm_wrestling_demo.mp4"), 1),
                  VideoRecord(str(VIDEOS / "short_36_frames.mp4"), 0),
                  VideoRecord(str(garbage), 1)],
        "test": [VideoRecord(str(FOLDERS / "jumping/0002"), 1,
                             {"first_frame": 1, "last_frame": 18})],
        "val": [],
    })
    settings = dict(short_side=64, videos_per_shard=2)
    beam_dir = tmp_path_factory.mktemp("beam")
    summary = prepare_dataset_with_beam(dataset, beam_dir, runner="direct", **settings)
    local_dir = tmp_path_factory.mktemp("local")
    prepare_dataset(dataset, local_dir, workers=1, **settings)
    return dataset, beam_dir, local_dir, summary, str(garbage)


@requires_shared_data
def test_shards_hold_the_local_runners_records_in_the_same_order(prepared):
    _, beam_dir, local_dir, _, garbage = prepared
    beam_shards = shard_records(beam_dir, "rgb")
    assert sorted(beam_shards) == ["test-00000-of-00001.tfrecord",
                                   "train-00000-of-00002.tfrecord",
                                   "train-00001-of-00002.tfrecord"]
    # Plan order (seed 0): short_36, ApplyEyeMakeup | arm_wrestling, garbage.
    assert [path for path, *_ in beam_shards["train-00000-of-00002.tfrecord"]] == [
        str(VIDEOS / "short_36_frames.mp4"), str(VIDEOS / "v_ApplyEyeMakeup_test.avi")]
    assert beam_shards == shard_records(local_dir, "rgb")
    stored = {path: (label, frames) for shard in beam_shards.values()
              for path, label, frames, jpegs in shard}
    assert stored == {str(VIDEOS / "v_ApplyEyeMakeup_test.avi"): (0, 164),
                      str(VIDEOS / "arm_wrestling_demo.mp4"): (1, 280),
                      str(VIDEOS / "short_36_frames.mp4"): (0, 36),
                      str(FOLDERS / "jumping/0002"): (1, 18)}
    for shard in beam_shards.values():
        for path, _, frames, jpegs in shard:
            assert len(jpegs) == frames
            assert tf.io.decode_jpeg(jpegs[-1]).shape[0] == 64, path
    assert garbage not in stored
    # Every file, JSON sidecars and reports included, is the local runner's.
    assert tree_bytes(beam_dir) == tree_bytes(local_dir)


@requires_shared_data
def test_report_lists_the_garbage_file_and_summary_counts(prepared):
    _, beam_dir, _, summary, garbage = prepared
    report = json.loads((beam_dir / "report.json").read_text())
    assert report["skipped"] == [{"path": garbage, "reason": "unreadable", "subset": "train"}]
    assert f"{garbage}: unreadable" in (beam_dir / "report.txt").read_text()
    info = json.loads((beam_dir / "dataset.json").read_text())
    assert info["subsets"]["train"] == {"videos": 3, "frames": 164 + 280 + 36, "shards": 2,
                                        "skipped": 1, "truncated": 0}
    assert info["subsets"]["val"]["shards"] == 0
    shard_bytes = sum(path.stat().st_size for path in (beam_dir / "rgb").iterdir())
    assert summary["runner"] == "direct"
    assert (summary["videos"], summary["frames"]) == (4, 164 + 280 + 36 + 18)
    assert summary["skipped"] == 1 and summary["skip_reasons"] == {"unreadable": 1}
    assert summary["bytes"] == shard_bytes
    assert (summary["shards_written"], summary["shards_kept"]) == (3, 0)
    assert summary["frames_encoded"] == 164 + 280 + 36 + 18


@requires_shared_data
def test_rerun_writes_only_missing_shards(prepared):
    dataset, beam_dir, local_dir, _, _ = prepared
    clean = tree_bytes(beam_dir)
    rgb = beam_dir / "rgb"
    (rgb / "train-00001-of-00002.tfrecord").unlink()
    (rgb / "train-00000-of-00002.tfrecord.0123.incomplete").write_bytes(b"half a shard")
    kept = {name: os.stat(rgb / name) for name in
            ("train-00000-of-00002.tfrecord", "test-00000-of-00001.tfrecord")}

    summary = prepare_dataset_with_beam(dataset, beam_dir, short_side=64, videos_per_shard=2)
    assert (summary["shards_written"], summary["shards_kept"]) == (1, 2)
    rewritten = shard_records(beam_dir, "rgb")["train-00001-of-00002.tfrecord"]
    assert summary["frames_encoded"] == sum(frames for _, _, frames, _ in rewritten) > 0
    for name, before in kept.items():
        after = os.stat(rgb / name)
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert tree_bytes(beam_dir) == clean
    # The local runner's output is finished work for the Beam runner too.
    summary = prepare_dataset_with_beam(dataset, local_dir, short_side=64, videos_per_shard=2)
    assert (summary["shards_written"], summary["shards_kept"]) == (0, 3)
    with pytest.raises(ValueError, match="short_side: 64 there, 32 now"):
        prepare_dataset_with_beam(dataset, local_dir, short_side=32, videos_per_shard=2)


@requires_shared_data
def test_flow_shards_on_another_filesystem_match_the_local_runner(tmp_path):
    """TensorFlow's in-memory ram:// filesystem stands in for gs:// on Dataflow."""
    dataset = VideoDataset("flow", ("jumping", "running"), {"train": [
        VideoRecord(str(FOLDERS / "jumping/0001"), 0, {"first_frame": 1, "last_frame": 17}),
        VideoRecord(str(FOLDERS / "running/0001"), 1, {"first_frame": 1, "last_frame": 15}),
    ]})
    remote = "ram://beam_preparation_test/flow"
    prepare_dataset_with_beam(dataset, remote, short_side=32, flow="dis")
    prepare_dataset(dataset, tmp_path, short_side=32, flow="dis", workers=1)
    flow = shard_records(tmp_path, "flow_dis")
    stored = sorted((path, frames) for path, _, frames, _ in flow["train-00000-of-00001.tfrecord"])
    assert stored == [(str(FOLDERS / "jumping/0001"), 16), (str(FOLDERS / "running/0001"), 14)]
    files = tree_bytes(remote)
    assert "flow_dis/train-00000-of-00001.tfrecord" in files
    assert files == tree_bytes(tmp_path)


def test_bad_runner_arguments_are_refused(tmp_path):
    dataset = VideoDataset("none", ("a",), {"train": []})
    with pytest.raises(ValueError, match="runner must be one of"):
        prepare_dataset_with_beam(dataset, tmp_path, runner="local")
    with pytest.raises(ValueError, match="not in pipeline_args"):
        prepare_dataset_with_beam(dataset, tmp_path, pipeline_args=["--runner=DataflowRunner"])
    assert not any(tmp_path.iterdir())


def test_an_empty_dataset_gets_zero_counts(tmp_path):
    dataset = VideoDataset("empty", ("a",), {"train": []})
    summary = prepare_dataset_with_beam(dataset, tmp_path)
    assert (summary["videos"], summary["shards_written"], summary["frames_encoded"]) == (0, 0, 0)
    info = json.loads((tmp_path / "dataset.json").read_text())
    assert info["subsets"] == {"train": {"videos": 0, "frames": 0, "shards": 0,
                                         "skipped": 0, "truncated": 0}}


@requires_shared_data
def test_script_prepares_a_folder_layout_with_the_direct_runner(tmp_path):
    for class_name, name in (("eye", "v_ApplyEyeMakeup_test.avi"),
                             ("office", "short_36_frames.mp4")):
        (tmp_path / "videos" / class_name).mkdir(parents=True)
        (tmp_path / "videos" / class_name / name).symlink_to(VIDEOS / name)
    output_dir = tmp_path / "out"
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                       PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                                os.environ.get("PYTHONPATH")])))
    result = subprocess.run(
        [sys.executable, str(ROOT / "train" / "prepare_data.py"), "--dataset=folder",
         f"--video_dir={tmp_path / 'videos'}", f"--output_dir={output_dir}",
         "--short_side=32", "--videos_per_shard=1", "--runner=direct",
         "--beam_args=--direct_num_workers=1 --direct_running_mode=in_memory"],
        capture_output=True, text=True, env=environment, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Prepared 2 videos, 200 frames" in result.stdout
    info = json.loads((output_dir / "dataset.json").read_text())
    assert info["name"] == "folder" and info["classes"] == ["eye", "office"]
    assert info["short_side"] == 32
    assert info["subsets"]["train"] == {"videos": 2, "frames": 164 + 36, "shards": 2,
                                        "skipped": 0, "truncated": 0}
    stored = {pathlib.Path(path).name: (label, frames)
              for shard in shard_records(output_dir, "rgb").values()
              for path, label, frames, _ in shard}
    assert stored == {"v_ApplyEyeMakeup_test.avi": (0, 164), "short_36_frames.mp4": (1, 36)}
