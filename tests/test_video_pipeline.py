import numpy as np
import pytest
import tensorflow as tf

from keras_memdpc.clip_augmentation import normalise
from keras_memdpc.video_pipeline import (
    count_evaluation_windows,
    evaluation_dataset,
    evaluation_window_starts,
    sample_start,
    training_dataset,
)
from keras_memdpc.video_tfrecord import make_sequence_example, shard_path, shard_pattern

SIZE = 8  # output frames are SIZE x SIZE


def jpeg(frame):
    return tf.io.encode_jpeg(tf.constant(frame), quality=100).numpy()


def numbered_video(num_frames, height=12, width=16):
    """Gray frames whose level encodes the frame index: 2 * index + 5."""
    return [jpeg(np.full((height, width, 3), 2 * i + 5, np.uint8)) for i in range(num_frames)]


def frame_numbers(clip):
    """Frame indices of a uint8 clip [blocks, frames, h, w, 3] of numbered frames."""
    levels = clip.reshape(-1, *clip.shape[2:]).mean(axis=(1, 2, 3))
    return np.round((levels - 5) / 2).astype(int)


def write_videos(directory, videos, modality="rgb", shards=1, height=12, width=16):
    """videos: (jpegs, label) pairs, dealt round-robin into shards; returns the glob."""
    (directory / modality).mkdir(exist_ok=True)
    writers = [
        tf.io.TFRecordWriter(shard_path(str(directory), modality, "train", i, shards))
        for i in range(shards)
    ]
    for index, (jpegs, label) in enumerate(videos):
        example = make_sequence_example(
            jpegs, path=f"video_{index}.avi", label=label, fps=25.0,
            height=height, width=width, modality=modality,
        )
        writers[index % shards].write(example.SerializeToString())
    for writer in writers:
        writer.close()
    return shard_pattern(str(directory), modality, "train")


def batches(dataset, count):
    return [(c.numpy(), l.numpy()) for c, l in dataset.take(count)]


def test_start_is_uniform_over_the_valid_range_and_zero_for_short_videos():
    starts = [int(sample_start(tf.constant([s, 1], tf.int64), 200, 120)) for s in range(200)]
    assert min(starts) >= 0 and max(starts) <= 80
    assert min(starts) < 5 and max(starts) > 75
    assert int(sample_start(tf.constant([3, 1], tf.int64), 200, 120)) == starts[3]
    assert {int(sample_start(tf.constant([s, 1], tf.int64), 36, 120)) for s in range(20)} == {0}


def test_short_video_is_padded_with_its_last_frame(tmp_path):
    pattern = write_videos(tmp_path, [(numbered_video(36), 0)])
    dataset = training_dataset(
        pattern, 1, image_size=SIZE, output_dtype="uint8", colour_augmentation=False
    )
    for clips, _ in batches(dataset, 2):
        np.testing.assert_array_equal(frame_numbers(clips[0]), np.minimum(3 * np.arange(40), 35))


def test_long_videos_give_strided_clips_from_random_starts(tmp_path):
    pattern = write_videos(tmp_path, [(numbered_video(125), 0)])
    dataset = training_dataset(
        pattern, 2, image_size=SIZE, output_dtype="uint8", colour_augmentation=False
    )
    starts = set()
    for clips, _ in batches(dataset, 6):
        for clip in clips:
            numbers = frame_numbers(clip)
            np.testing.assert_array_equal(numbers, numbers[0] + 3 * np.arange(40))
            assert 0 <= numbers[0] <= 125 - 120
            starts.add(numbers[0])
    assert len(starts) >= 3


def textured_videos(count, num_frames=6, height=24, width=32):
    """Videos repeating one random RGB frame, each with its own frame."""
    rng = np.random.default_rng(0)
    videos = []
    for label in range(count):
        frame = jpeg(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        videos.append(([frame] * num_frames, label))
    return videos


def test_crop_and_flip_are_shared_by_the_frames_while_colours_differ(tmp_path):
    pattern = write_videos(tmp_path, textured_videos(2), height=24, width=32)
    plain = training_dataset(
        pattern, 4, image_size=SIZE, output_dtype="uint8", colour_augmentation=False
    )
    clips = np.concatenate([c for c, _ in batches(plain, 2)])
    frames = clips.reshape(len(clips), 40, SIZE, SIZE, 3)
    assert (frames == frames[:, :1]).all()  # one crop and one flip per clip
    assert len({clip.tobytes() for clip in frames[:, 0]}) == len(clips)  # clips differ
    coloured = training_dataset(pattern, 4, image_size=SIZE, output_dtype="uint8")
    frames = np.concatenate([c for c, _ in batches(coloured, 1)]).reshape(4, 40, -1)
    for clip in frames:
        assert len({frame.tobytes() for frame in clip}) > 30


def views_of_each_video(pattern, **options):
    """The distinct first frames of 24 training clips, per video label."""
    dataset = training_dataset(pattern, 4, image_size=SIZE, output_dtype="uint8",
                               colour_augmentation=False, random_crop=False, **options)
    views = {0: set(), 1: set()}
    for clips, labels in batches(dataset, 6):
        for clip, label in zip(clips, labels):
            views[int(label)].add(clip[0, 0].tobytes())
    return {label: [np.frombuffer(view, np.uint8).reshape(SIZE, SIZE, 3) for view in found]
            for label, found in views.items()}


def test_without_random_crop_every_clip_of_a_video_is_one_view_or_its_mirror(tmp_path):
    pattern = write_videos(tmp_path, textured_videos(2), height=24, width=32)
    for frames in views_of_each_video(pattern).values():
        assert len(frames) == 2, len(frames)  # 24 clips per video: both flips occur
        np.testing.assert_array_equal(frames[0], frames[1][:, ::-1])


def test_without_random_flip_every_clip_of_a_video_is_the_same_view(tmp_path):
    pattern = write_videos(tmp_path, textured_videos(2), height=24, width=32)
    flipping = views_of_each_video(pattern)
    for label, frames in views_of_each_video(pattern, random_flip=False).items():
        assert len(frames) == 1, len(frames)
        assert any((frames[0] == view).all() for view in flipping[label])


def test_shapes_and_dtypes_and_the_same_clip_in_every_output_dtype(tmp_path):
    pattern = write_videos(tmp_path, textured_videos(3), height=24, width=32)
    outputs = {}
    for dtype in ("float32", "bfloat16", "uint8"):
        dataset = training_dataset(pattern, 2, image_size=SIZE, output_dtype=dtype)
        clips, labels = batches(dataset, 1)[0]
        assert clips.shape == (2, 8, 5, SIZE, SIZE, 3)
        assert clips.dtype == tf.as_dtype(dtype).as_numpy_dtype
        assert labels.dtype == np.int32 and labels.shape == (2,)
        outputs[dtype] = clips.astype(np.float32)
    normalised = normalise(outputs["uint8"]).numpy()
    np.testing.assert_allclose(outputs["float32"], normalised, atol=0.5 / 255 / 0.224 + 1e-5)
    np.testing.assert_allclose(outputs["bfloat16"], outputs["float32"], atol=0.02)


def test_flow_flip_negates_dx_and_colours_stay(tmp_path):
    frame = np.zeros((12, 16, 3), np.uint8)
    frame[..., 0], frame[..., 1] = 200, 100  # dx = +11.4, dy = -4.3 (of +-20)
    pattern = write_videos(tmp_path, [([jpeg(frame)] * 10, 0)], modality="flow_tvl1")
    dataset = training_dataset(
        pattern, 4, image_size=SIZE, modality="flow_tvl1", output_dtype="uint8"
    )
    clips = np.concatenate([c for c, _ in batches(dataset, 3)]).astype(int)
    dx, dy = clips[..., 0].mean(axis=(1, 2, 3, 4)), clips[..., 1].mean(axis=(1, 2, 3, 4))
    assert set(np.round(dx / 5) * 5) == {55, 200}  # flipped: 255 - 200
    np.testing.assert_allclose(dy, 100, atol=3)  # no colour jitter on flow


def test_training_is_deterministic_by_seed(tmp_path):
    pattern = write_videos(tmp_path, textured_videos(4), shards=2, height=24, width=32)
    dataset = training_dataset(pattern, 2, image_size=SIZE, seed=3)
    first, again = batches(dataset, 3), batches(dataset, 3)
    rebuilt = batches(training_dataset(pattern, 2, image_size=SIZE, seed=3), 3)
    other = batches(training_dataset(pattern, 2, image_size=SIZE, seed=4), 3)
    for run in (again, rebuilt):
        for (clips, labels), (clips2, labels2) in zip(first, run):
            np.testing.assert_array_equal(clips, clips2)
            np.testing.assert_array_equal(labels, labels2)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, other))


@pytest.mark.parametrize("shards", [4, 1])  # shard files, then (one file) videos
def test_input_pipelines_read_disjoint_halves(tmp_path, shards):
    videos = [(numbered_video(3), label) for label in range(8)]
    pattern = write_videos(tmp_path, videos, shards=shards)
    seen = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=2
        )
        dataset = training_dataset(
            pattern, 2, image_size=SIZE, input_context=context, repeat=False,
            colour_augmentation=False, output_dtype="uint8",
        )
        labels = []
        for clips, batch_labels in dataset:
            assert clips.shape[0] == 1  # the per-replica batch of a global batch of 2
            labels.extend(batch_labels.numpy().tolist())
        seen.append(labels)
    assert len(seen[0]) == len(seen[1]) == 4
    assert sorted(seen[0] + seen[1]) == list(range(8))


def test_inconsistent_videos_are_skipped_in_training(tmp_path):
    good = write_videos(tmp_path, [(numbered_video(5), label) for label in range(3)])
    bad = make_sequence_example(
        numbered_video(5), path="bad_size.avi", label=9, fps=25.0, height=99, width=16
    )
    with tf.io.TFRecordWriter(str(tmp_path / "rgb" / "train-00000-of-00002.tfrecord")) as writer:
        writer.write(bad.SerializeToString())
    dataset = training_dataset(good, 1, image_size=SIZE, repeat=False, output_dtype="uint8")
    assert sorted(int(label[0]) for _, label in dataset) == [0, 1, 2]
    with pytest.raises(tf.errors.InvalidArgumentError, match="bad_size.avi"):
        list(evaluation_dataset(good, 1, image_size=SIZE))


def test_window_starts_cover_the_video_every_half_window():
    counts = [len(evaluation_window_starts(n, 120, 60)) for n in (36, 119, 120, 179, 180, 300)]
    assert counts == [1, 1, 1, 1, 2, 4]
    np.testing.assert_array_equal(evaluation_window_starts(300, 120, 60), [0, 60, 120, 180])


def test_evaluation_yields_every_window_of_every_video_in_order(tmp_path):
    pattern = write_videos(tmp_path, [(numbered_video(36), 7), (numbered_video(120), 8)])
    # 10 blocks of 2 frames at stride 3: windows of 60 frames every 30.
    dataset = evaluation_dataset(
        pattern, 2, image_size=SIZE, num_blocks=10, block_length=2, output_dtype="uint8"
    )
    clips, info = [], {}
    for batch, batch_info in dataset:
        clips.append(batch.numpy())
        for key, value in batch_info.items():
            info.setdefault(key, []).extend(value.numpy())
    clips = np.concatenate(clips)
    assert clips.shape == (1 + 3, 10, 2, SIZE, SIZE, 3)
    assert info["video_index"] == [0, 1, 1, 1] and info["window_index"] == [0, 0, 1, 2]
    assert info["label"] == [7, 8, 8, 8] and info["crop_index"] == [0, 0, 0, 0]
    np.testing.assert_array_equal(frame_numbers(clips[0]), np.minimum(3 * np.arange(20), 35))
    for window in range(3):
        expected = 30 * window + 3 * np.arange(20)
        np.testing.assert_array_equal(frame_numbers(clips[1 + window]), expected)
    again = np.concatenate([batch.numpy() for batch, _ in dataset])
    np.testing.assert_array_equal(again, clips)
    assert count_evaluation_windows(pattern, num_blocks=10, block_length=2) == 4


def crops_of_one_window(pattern, crops):
    clips, crop_index = [], []
    for batch, info in evaluation_dataset(pattern, 4, image_size=SIZE, crops=crops,
                                          output_dtype="bfloat16"):
        clips.append(batch.numpy().astype(np.float32))
        crop_index.extend(info["crop_index"].numpy())
    return np.concatenate(clips), crop_index


def test_ten_crop_evaluation_gives_ten_clips_per_window(tmp_path):
    pattern = write_videos(tmp_path, textured_videos(1, num_frames=4), height=24, width=32)
    clips, crop_index = crops_of_one_window(pattern, "ten")
    assert clips.shape == (10, 8, 5, SIZE, SIZE, 3) and crop_index == list(range(10))
    np.testing.assert_array_equal(clips[5:], clips[:5, ..., ::-1, :])  # the mirrored five
    assert len({clip.tobytes() for clip in clips}) == 10
    five, crop_index = crops_of_one_window(pattern, "five")
    assert crop_index == list(range(5))
    np.testing.assert_array_equal(five, clips[:5])  # no mirrored crops


def test_missing_files_and_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no TFRecord shards match"):
        training_dataset(str(tmp_path / "*.tfrecord"), 2)
    pattern = write_videos(tmp_path, [(numbered_video(3), 0)])
    with pytest.raises(ValueError, match="output_dtype"):
        training_dataset(pattern, 2, output_dtype="float16")
    with pytest.raises(ValueError, match="crops"):
        evaluation_dataset(pattern, 2, crops="three")
