"""tf.data input pipelines over prepared videos (sharded TFRecord SequenceExamples).

Training (`training_dataset`) follows the reference pipeline (DESIGN.md
section 2) and yields (clips, labels): clips [batch, num_blocks,
block_length, image_size, image_size, 3], labels int32 [batch]. Per video:
1. sampling before decoding: a random start in
   [0, max(0, num_frames - num_blocks * block_length * stride)], frames
   start + stride * arange(num_blocks * block_length), indices past the end
   repeat the last frame (short videos are padded, never dropped); only those
   JPEGs are kept;
2. one random-resized crop per clip (area U(0.5, 1), aspect U(3/4, 4/3);
   with random_crop=False the centre square of the whole short side),
   decoded directly from the JPEGs (tf.io.decode_and_crop_jpeg: the window
   is known from the stored frame size) and resized to image_size;
3. one horizontal flip per clip, p = 0.5 (flow: dx negated; random_flip=False:
   none, for labels a mirror image changes);
4. RGB only: per-frame random grayscale and colour jitter
   (keras_memdpc.frame_colour_augmentation);
5. float32 / bfloat16: ImageNet normalisation; uint8: raw pixels, which the
   model normalises on the device with the same constants.
Optical flow ("flow_tvl1", "flow_dis") takes the same path without the
colour augmentations: its channels are motion, not colour.

Evaluation (`evaluation_dataset`) yields every sliding window of every video
in file order, with a centre crop, five crops or ten crops, without randomness.

With `clip_times=True` both also give, per clip, "frame_times" (float32
[clip frames], the time in seconds of each sampled frame in its video:
frame index / video fps, padded indices at the last frame's time) and the
video's "metadata" (its JSON string, e.g. the Oops failure time t_fail), so
that labels which depend on where a clip lies in its video (Oops) can be
computed per block.

Training works in two stages: per video (parse, check, draw the start,
keep the clip's JPEGs), then, after the shuffle buffer, per batch (decode,
crop, resize, then one XLA-fused pass for flip, colours and normalisation
that writes the batch directly). Per batch rather than per clip saves the
separate batching copy and most small-op overhead: on one core of a 2-core
x86-64 machine, ~90 clips/s at 128 px from 200 x 150 JPEG frames, about
half of what bare JPEG decoding of those frames allows
(benchmarks/input_pipeline.py).

Randomness is stateless, so two iterations of one dataset, or two datasets
with the same arguments, give identical batches: a video's start comes from
(seed, input pipeline, its position in the read stream), a batch's crops,
flips and colours from (seed, input pipeline, the batch's position). Files
are reshuffled every epoch by a stateless shuffle; videos go through a
seeded shuffle buffer of `shuffle_buffer` sampled clips (each holds only its
clip's JPEGs, ~40 x 10 kB at 150 px).
"""

import tensorflow as tf
from absl import logging

from keras_memdpc.clip_augmentation import (
    OUTPUT_DTYPES,
    centre_crop_box,
    five_crops,
    flip_clip,
    resize_clip,
    sample_crop_box,
    ten_crops,
    to_output_dtype,
)
from keras_memdpc.frame_colour_augmentation import (
    apply_colour_transforms,
    channel_means,
    colour_transforms,
)
from keras_memdpc.in_memory_clips import sample_frame_indices
from keras_memdpc.video_tfrecord import MODALITIES, parse_sequence_example, shard_files

CROPS = {"centre": 1, "five": 5, "ten": 10}  # clips per window
MAX_PARALLEL_FILES = 16
AUTOTUNE = tf.data.AUTOTUNE


def _check_choices(modality, output_dtype):
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    if output_dtype not in OUTPUT_DTYPES:
        raise ValueError(f"output_dtype must be one of {OUTPUT_DTYPES}, got {output_dtype!r}")


def sample_start(seed, num_frames, window):
    """Random first frame, uniform in [0, max(0, num_frames - window)] (int32)."""
    latest = tf.maximum(tf.cast(num_frames, tf.int32) - window, 0)
    return tf.random.stateless_uniform([], seed, 0, latest + 1, dtype=tf.int32)


def evaluation_window_starts(num_frames, window, window_stride):
    """First frames of the sliding windows: 0, s, 2s, ... while a whole window fits.

    A video shorter than a window still gets one window (padded with its last
    frame). Returns int32 [windows].
    """
    num_frames = tf.cast(num_frames, tf.int32)
    count = tf.maximum(num_frames - window, 0) // window_stride + 1
    return tf.range(count) * window_stride


def count_evaluation_windows(file_pattern, num_blocks=8, block_length=5, stride=3,
                             window_stride=None):
    """How many clips `evaluation_dataset` yields per crop for these shards.

    Reads only each record's frame count (no JPEG is decoded), so a caller
    can give a finite evaluation its length (Keras warns about running out of
    data on a dataset of unknown length).
    """
    window = num_blocks * block_length * stride
    window_stride = window_stride or window // 2
    frame_counts = tf.data.TFRecordDataset(shard_files(file_pattern)).map(
        lambda serialized: tf.io.parse_single_sequence_example(
            serialized,
            context_features={"video/num_frames": tf.io.FixedLenFeature([], tf.int64)},
        )[0]["video/num_frames"],
        num_parallel_calls=AUTOTUNE,
    )
    windows = frame_counts.map(
        lambda n: tf.size(evaluation_window_starts(n, window, window_stride), tf.int64)
    )
    return int(windows.reduce(tf.constant(0, tf.int64), lambda total, n: total + n))


def _parse_checked(serialized, modality):
    """Parses one video; its path is in the error when it is inconsistent."""
    video = parse_sequence_example(serialized)
    path = video["video/path"]
    num_frames = video["video/num_frames"]
    stored = tf.size(video["frames/encoded"], tf.int64)
    checks = [
        tf.debugging.Assert(
            (num_frames == stored) & (num_frames > 0),
            ["Video", path, "says", num_frames, "frames but holds", stored, "JPEGs"],
        ),
        tf.debugging.Assert(
            tf.equal(video["video/modality"], modality),
            ["Video", path, "has modality", video["video/modality"],
             "but the pipeline reads", modality],
        ),
    ]
    with tf.control_dependencies(checks):
        return {key: tf.identity(value) for key, value in video.items()}


def _check_frame_size(video, jpeg):
    """`jpeg`'s header must match the stored frame size; the error names the video."""
    header = tf.io.extract_jpeg_shape(jpeg)
    height, width = video["video/height"], video["video/width"]
    return tf.debugging.Assert(
        (tf.cast(header[0], tf.int64) == height) & (tf.cast(header[1], tf.int64) == width),
        ["Video", video["video/path"], "stores frames of", height, width,
         "but its JPEGs are", header[:2]],
    )


def _times_and_metadata(video, indices):
    """{"frame_times": float32 [..., frames] seconds of `indices`, "metadata": JSON}."""
    fps = video["video/fps"]
    check = tf.debugging.Assert(fps > 0, ["Video", video["video/path"], "has fps", fps])
    with tf.control_dependencies([check]):
        frame_times = tf.cast(indices, tf.float32) / fps
    return {"frame_times": frame_times, "metadata": video["video/metadata"]}


def _decode_frames(jpegs, count, window=None):
    """Decodes `count` JPEGs into uint8 [count, h, w, 3], only `window` if given."""
    if window is None:
        frames = [tf.io.decode_jpeg(jpegs[i], channels=3) for i in range(count)]
    else:
        frames = [
            tf.io.decode_and_crop_jpeg(jpegs[i], window, channels=3)
            for i in range(count)
        ]
    return tf.stack(frames)


@tf.function(jit_compile=True)
def _finish_clips(clips, flips, matrices, offsets, flow, output_dtype):
    """Flip, colour transforms, clip to [0, 255], output dtype, stacked.

    One fused XLA pass that writes the batch directly (no separate batching
    copy). clips: list of float32 [frames, size, size, 3]; flips: bool
    [clips] or None (no flip); matrices [clips * frames, 3, 3] and offsets
    [clips * frames, 3], or None (no colour change).
    """
    finished = []
    for index, frames in enumerate(clips):
        if flips is not None:
            frames = flip_clip(frames, flips[index], flow)
        if matrices is not None:
            count = frames.shape[0]
            rows = slice(index * count, (index + 1) * count)
            frames = tf.clip_by_value(
                apply_colour_transforms(frames, matrices[rows], offsets[rows]), 0.0, 255.0
            )
        finished.append(to_output_dtype(frames, output_dtype))
    return tf.stack(finished)


def training_dataset(
    file_pattern,
    batch_size,
    image_size=128,
    num_blocks=8,
    block_length=5,
    stride=3,
    seed=0,
    input_context=None,
    modality="rgb",
    colour_augmentation=True,
    random_crop=True,
    random_flip=True,
    output_dtype="float32",
    shuffle_buffer=256,
    repeat=True,
    clip_times=False,
):
    """Augmented training clips from prepared TFRecord shards.

    Args:
        file_pattern: glob of the shards, e.g.
            video_tfrecord.shard_pattern(output_dir, "rgb", "train").
        batch_size: the global batch; with `input_context`, each pipeline
            yields input_context.get_per_replica_batch_size(batch_size).
        image_size: output frame height and width.
        num_blocks, block_length: clip layout (8 x 5 in MemDPC).
        stride: step between sampled frames (3).
        seed: seed of every random choice.
        input_context: tf.distribute.InputContext for multi-worker input: each
            pipeline reads every n-th file when there are at least as many
            files as pipelines, else every n-th video; augmentations differ
            between pipelines.
        modality: "rgb", "flow_tvl1" or "flow_dis"; every video must match.
        colour_augmentation: per-frame grayscale and colour jitter (RGB only).
        random_crop: the random-resized crop; False: the centre square of
            the whole short side, the same for every clip.
        random_flip: one horizontal flip per clip with p = 0.5; False for
            labels that a mirror image changes (left / right motion).
        output_dtype: "float32" or "bfloat16" (normalised) or "uint8" (raw).
        shuffle_buffer: sampled clips in the video shuffle buffer.
        repeat: endless (files reshuffled each epoch) or one pass.
        clip_times: also give each clip's frame times and video metadata.
    Returns a dataset of (clips [batch, num_blocks, block_length, image_size,
    image_size, 3] of `output_dtype`, labels int32 [batch]); with
    `clip_times`, (clips, {"label": int32 [batch], "frame_times": float32
    [batch, num_blocks * block_length] seconds, "metadata": string [batch]
    JSON}). A video whose
    record is inconsistent (frame count, modality, frame size) is skipped
    with a logged warning naming its file; a batch holding a JPEG that does
    not decode is skipped with the decoder's warning. The batch step is
    unrolled over the clips of a batch (40 JPEG decodes each) and XLA-compiled
    once: the first batch takes ~5 s at 16 clips, ~25 s at 64 (2-core CPU).
    """
    _check_choices(modality, output_dtype)
    files = shard_files(file_pattern)
    pipelines, pipeline_id = 1, 0
    if input_context is not None:
        pipelines = input_context.num_input_pipelines
        pipeline_id = input_context.input_pipeline_id
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    by_file = pipelines > 1 and len(files) >= pipelines
    if by_file:
        files = files[pipeline_id::pipelines]
    if pipelines > 1:
        logging.info(
            "Training input pipeline %d of %d: %d files, sharded by %s, batch %d",
            pipeline_id, pipelines, len(files), "file" if by_file else "video",
            batch_size,
        )
    clip_frames = num_blocks * block_length
    window = clip_frames * stride
    flow = modality != "rgb"
    colour = colour_augmentation and not flow
    video_seed, batch_seed = tf.unstack(
        tf.random.experimental.stateless_split(
            tf.constant([seed, pipeline_id], tf.int64), 2
        )
    )

    names = tf.constant(files)
    epochs = tf.data.Dataset.counter() if repeat else tf.data.Dataset.range(1)
    file_order = epochs.flat_map(
        lambda epoch: tf.data.Dataset.from_tensor_slices(
            tf.random.experimental.stateless_shuffle(
                names, seed=tf.stack([tf.constant(seed, tf.int64), epoch])
            )
        )
    )
    records = file_order.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), MAX_PARALLEL_FILES),
        block_length=1,
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    if pipelines > 1 and not by_file:
        records = records.shard(pipelines, pipeline_id)

    def sample(position, serialized):
        video = _parse_checked(serialized, modality)
        num_frames = tf.cast(video["video/num_frames"], tf.int32)
        start_seed = tf.random.experimental.stateless_fold_in(video_seed, position)
        start = sample_start(start_seed, num_frames, window)
        indices = sample_frame_indices(num_frames, clip_frames, stride, start)
        jpegs = tf.gather(video["frames/encoded"], indices)
        with tf.control_dependencies([_check_frame_size(video, jpegs[0])]):
            sampled = {
                "frames": tf.identity(jpegs),
                "label": tf.cast(video["video/label"], tf.int32),
                "height": tf.cast(video["video/height"], tf.int32),
                "width": tf.cast(video["video/width"], tf.int32),
            }
        if clip_times:
            sampled.update(_times_and_metadata(video, indices))
        return sampled

    def augment(position, samples):
        crop_seed, flip_seed, colour_seed = tf.unstack(
            tf.random.experimental.stateless_split(
                tf.random.experimental.stateless_fold_in(batch_seed, position), 3
            )
        )
        ranges = {} if random_crop else {"area_range": (1.0, 1.0), "aspect_range": (1.0, 1.0)}
        boxes = sample_crop_box(crop_seed, samples["height"], samples["width"], **ranges)
        flips = None
        if random_flip:
            flips = tf.random.stateless_uniform([batch_size], flip_seed) < 0.5
        clips = [
            resize_clip(
                _decode_frames(samples["frames"][index], clip_frames, window=boxes[index]),
                image_size,
            )
            for index in range(batch_size)
        ]
        matrices = offsets = None
        if colour:
            means = tf.concat([channel_means(frames) for frames in clips], axis=0)
            matrices, offsets = colour_transforms(colour_seed, means)
        batch = _finish_clips(clips, flips, matrices, offsets, flow, output_dtype)
        shape = [batch_size, num_blocks, block_length, image_size, image_size, 3]
        batch = tf.reshape(batch, shape)
        if clip_times:
            return batch, {key: samples[key] for key in ("label", "frame_times", "metadata")}
        return batch, samples["label"]

    samples = records.enumerate().map(sample, num_parallel_calls=AUTOTUNE)
    samples = samples.ignore_errors(log_warning=True)
    samples = samples.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
    batches = samples.batch(batch_size, drop_remainder=True).enumerate()
    batches = batches.map(augment, num_parallel_calls=AUTOTUNE)
    return batches.ignore_errors(log_warning=True).prefetch(AUTOTUNE)


def evaluation_dataset(
    file_pattern,
    batch_size,
    image_size=128,
    num_blocks=8,
    block_length=5,
    stride=3,
    crops="centre",
    window_stride=None,
    modality="rgb",
    output_dtype="float32",
    clip_times=False,
):
    """Every sliding window of every video, centre-, five- or ten-cropped.

    Videos are read in sorted file order, records in file order; windows
    start every `window_stride` frames (default half a window,
    num_blocks * block_length * stride // 2) while a whole window fits, and
    a video shorter than a window gives one window padded with its last
    frame. Crops are squares of 0.875 of the short side resized to
    image_size (clip_augmentation.EVAL_CROP_FRACTION): "centre" gives one clip
    per window, "five" gives 5 (centre, top-left, top-right, bottom-left,
    bottom-right; crop_index 0-4), "ten" those 5 and then the same mirrored
    (crop_index 0-9). No randomness, no colour change. Errors are raised,
    naming the file where the check knows it: an evaluation must see every
    video.

    Returns a dataset of (clips [batch, num_blocks, block_length, image_size,
    image_size, 3] of `output_dtype`, info) where info holds int32 [batch]
    "label", "video_index" (position of the video in the read order),
    "window_index" and "crop_index"; with `clip_times`, also "frame_times"
    (float32 [batch, num_blocks * block_length] seconds of the window's
    frames in its video) and "metadata" (string [batch], the video's JSON
    metadata). The last batch may be smaller.
    """
    _check_choices(modality, output_dtype)
    if crops not in CROPS:
        raise ValueError(f"crops must be one of {tuple(CROPS)}, got {crops!r}")
    clip_frames = num_blocks * block_length
    window = clip_frames * stride
    window_stride = window_stride or window // 2
    flow = modality != "rgb"
    files = shard_files(file_pattern)
    count = CROPS[crops]

    def windows(video_index, serialized):
        video = _parse_checked(serialized, modality)
        num_frames = tf.cast(video["video/num_frames"], tf.int32)
        starts = evaluation_window_starts(num_frames, window, window_stride)
        indices = sample_frame_indices(num_frames, clip_frames, stride, starts[:, None])
        windows = tf.shape(starts)[0]
        with tf.control_dependencies([_check_frame_size(video, video["frames/encoded"][0])]):
            windowed = {
                "frames": tf.gather(video["frames/encoded"], indices),
                "label": tf.fill([windows], tf.cast(video["video/label"], tf.int32)),
                "video_index": tf.fill([windows], tf.cast(video_index, tf.int32)),
                "window_index": tf.range(windows),
                "height": tf.fill([windows], tf.cast(video["video/height"], tf.int32)),
                "width": tf.fill([windows], tf.cast(video["video/width"], tf.int32)),
            }
        if clip_times:
            times = _times_and_metadata(video, indices)
            windowed["frame_times"] = times["frame_times"]
            windowed["metadata"] = tf.fill([windows], times["metadata"])
        return windowed

    def crop(element):
        if crops == "centre":
            box = centre_crop_box(element["height"], element["width"])
            frames = _decode_frames(element["frames"], clip_frames, window=box)
            frames = resize_clip(frames, image_size)
        elif crops == "five":
            frames = five_crops(_decode_frames(element["frames"], clip_frames), image_size)
        else:
            frames = ten_crops(
                _decode_frames(element["frames"], clip_frames), image_size, flow=flow
            )
        clips = _finish_clips([frames], None, None, None, flow, output_dtype)
        clips = tf.reshape(
            clips, [count, num_blocks, block_length, image_size, image_size, 3]
        )
        keys = ("label", "video_index", "window_index")
        if clip_times:
            keys += ("frame_times", "metadata")
        info = {key: tf.repeat(element[key][None], count, axis=0) for key in keys}
        return clips, {**info, "crop_index": tf.range(count)}

    dataset = tf.data.TFRecordDataset(files).enumerate()
    dataset = dataset.map(windows, num_parallel_calls=AUTOTUNE)
    dataset = dataset.flat_map(tf.data.Dataset.from_tensor_slices)
    dataset = dataset.map(crop, num_parallel_calls=AUTOTUNE).unbatch()
    return dataset.batch(batch_size).prefetch(AUTOTUNE)
