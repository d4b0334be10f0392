"""Prepare a VideoDataset as sharded TFRecords: decode, resize, JPEG-encode, optional flow.

`encode_video` turns one VideoRecord into serialized SequenceExamples (one per
modality; schema in keras_memdpc.video_tfrecord): frames decoded and resized
to `short_side` (keras_memdpc.video_decoding), JPEG-encoded, and with `flow`
the optical flow images of consecutive frames (keras_memdpc.optical_flow;
n - 1 images for n frames). It is a pure, picklable function of its
arguments, so any runner can map it over videos.

`prepare_dataset` runs it over every video of every subset in worker
processes and writes, under OUTPUT_DIR:

    preparation.json                         the settings, written first
    rgb/<subset>-00003-of-00016.tfrecord     (and flow_tvl1/ or flow_dis/)
    shards/<subset>-00003-of-00016.json      per shard: counts, skips; marks it finished
    dataset.json                             name, classes, settings, per-subset counts
    report.json, report.txt                  skipped and truncated videos with reasons

Videos are shuffled with a fixed seed (so each shard mixes classes) and cut
into contiguous chunks of at most `videos_per_shard`. A shard is written
under a temporary name unique to the attempt (ending in .incomplete), renamed
when complete, then its sidecar JSON is written atomically. A rerun with the
same settings keeps finished shards and writes only the missing ones; a rerun
with different settings is refused. Videos that are missing, unreadable or
empty are skipped; videos that stop decoding early keep the frames that
decoded and are flagged truncated; both are counted and listed in the report,
never an abort.

Every output file goes through tf.io.gfile, so OUTPUT_DIR may also be a
gs:// path. The steps around the encoding (settings, shard plan, shard and
report writing) are public so that keras_memdpc.beam_preparation runs the
same preparation with Apache Beam and writes the same bytes.
"""

import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import itertools
import json
import multiprocessing
import os
import re
import time
import uuid
from collections import Counter, deque
from typing import NamedTuple

import cv2
import keras
import numpy as np
import tensorflow as tf
from absl import logging

from keras_memdpc.optical_flow import FLOW_METHODS, flow_images
from keras_memdpc.readers.frame_folders import list_frame_files
from keras_memdpc.video_decoding import (
    DEFAULT_FRAME_FOLDER_FPS,
    FrameFolderFrames,
    VideoDecodeError,
    VideoFrames,
)
from keras_memdpc.video_tfrecord import DATASET_JSON, make_sequence_example, shard_path

DEFAULT_VIDEOS_PER_SHARD = 32
PREPARATION_JSON = "preparation.json"
REPORT_JSON = "report.json"
REPORT_TXT = "report.txt"
SHARD_INFO_DIR = "shards"
INCOMPLETE_SUFFIX = ".incomplete"
SHUFFLE_SEED = 0
_SUBSET_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_TASKS_IN_FLIGHT_PER_WORKER = 4


class EncodedVideo(NamedTuple):
    """What `encode_video` made of one video.

    Attributes:
        path: the record's path.
        examples: {modality: serialized SequenceExample}; empty when skipped.
        frames: RGB frames stored (flow modalities hold frames - 1).
        expected_frames: frames the container or folder announced, or None.
        truncated: decoding stopped early; the frames that decoded are kept.
        skip_reason: why the video was skipped, or None.
    """

    path: str
    examples: dict
    frames: int
    expected_frames: object
    truncated: bool
    skip_reason: object


def flow_modality(flow):
    """Modality name of a flow method: "tvl1" -> "flow_tvl1"."""
    return f"flow_{flow}"


def modalities(flow):
    """Modalities written with `flow` (None, "tvl1" or "dis")."""
    return ("rgb",) if flow is None else ("rgb", flow_modality(flow))


def encode_jpeg(image, quality, full_chroma=False):
    """JPEG bytes of a uint8 RGB image [h, w, 3].

    full_chroma keeps colour at full resolution (4:4:4), for flow images
    whose x and y components would otherwise be subsampled.
    """
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    if full_chroma:
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
    return buffer.tobytes()


def _open_frames(record, short_side, upscale, frames_fps):
    """VideoFrames or FrameFolderFrames for a record (frame folders carry first/last_frame)."""
    if "first_frame" in record.metadata and "last_frame" in record.metadata:
        if not os.path.isdir(record.path):
            raise VideoDecodeError(record.path, "missing")
        paths = list_frame_files(
            record.path, record.metadata["first_frame"], record.metadata["last_frame"])
        return FrameFolderFrames(record.path, paths, short_side, upscale, frames_fps)
    return VideoFrames(record.path, short_side, upscale)


def _jpeg_recorded(frames, jpegs, quality):
    """Pass frames through, appending each one's JPEG bytes to `jpegs` on the way."""
    for frame in frames:
        jpegs.append(encode_jpeg(frame, quality))
        yield frame


def encode_video(record, short_side=256, flow=None, jpeg_quality=90, upscale=False,
                 frames_fps=DEFAULT_FRAME_FOLDER_FPS):
    """Decode, resize and JPEG-encode one video (and its flow) as SequenceExamples.

    Frames are processed one at a time: memory holds the JPEG bytes, not the
    decoded video.

    Args:
        record: a keras_memdpc.video_record.VideoRecord (a video file, or a
            frame folder when its metadata has first_frame and last_frame).
        short_side: short side of the stored frames (see video_decoding).
        flow: None, "tvl1" or "dis".
        jpeg_quality: 0-100.
        upscale: also enlarge videos smaller than short_side.
        frames_fps: frame rate recorded for frame folders.

    Returns:
        EncodedVideo: examples {"rgb": bytes[, "flow_<method>": bytes]}, or
        a skip_reason for a missing, empty or unreadable video (or a one-frame
        video when flow is asked for).
    """
    try:
        frames = _open_frames(record, short_side, upscale, frames_fps)
        rgb_jpegs, flow_jpegs = [], []
        recorded = _jpeg_recorded(frames, rgb_jpegs, jpeg_quality)
        if flow is None:
            for _ in recorded:
                pass
        else:
            for image in flow_images(recorded, flow):
                flow_jpegs.append(encode_jpeg(image, jpeg_quality, full_chroma=True))
    except VideoDecodeError as error:
        return EncodedVideo(record.path, {}, 0, None, False, error.reason)
    except cv2.error as error:
        message = str(error).strip().splitlines()[-1]
        return EncodedVideo(record.path, {}, 0, None, False, f"OpenCV error: {message}")
    except OSError as error:
        return EncodedVideo(record.path, {}, 0, None, False, f"unreadable: {error.strerror}")
    if flow is not None and not flow_jpegs:
        return EncodedVideo(record.path, {}, 0, frames.expected_frames, False,
                            "a single frame: no flow")
    height, width = frames.frame_size
    context = dict(path=record.path, label=record.label, fps=frames.fps, height=height,
                   width=width, metadata=record.metadata)
    examples = {"rgb": make_sequence_example(rgb_jpegs, modality="rgb", **context)}
    if flow is not None:
        modality = flow_modality(flow)
        examples[modality] = make_sequence_example(flow_jpegs, modality=modality, **context)
    return EncodedVideo(
        path=record.path,
        # deterministic: map keys sorted, the same bytes in every process
        examples={name: example.SerializeToString(deterministic=True)
                  for name, example in examples.items()},
        frames=len(rgb_jpegs),
        expected_frames=frames.expected_frames,
        truncated=frames.truncated,
        skip_reason=None,
    )


class ShardPlan(NamedTuple):
    """The videos of one shard of one subset."""

    subset: str
    index: int
    num_shards: int
    records: tuple

    @property
    def name(self):
        return f"{self.subset}-{self.index:05d}-of-{self.num_shards:05d}"


def plan_shards(dataset, videos_per_shard=DEFAULT_VIDEOS_PER_SHARD, seed=SHUFFLE_SEED):
    """Assign every video of every subset to a shard, deterministically.

    Each subset is shuffled with `seed` and split into ceil(n /
    videos_per_shard) contiguous chunks of near-equal size. An empty subset
    has no shard.

    Returns:
        A list of ShardPlan, subsets in sorted order, shards in index order.
    """
    if videos_per_shard < 1:
        raise ValueError(f"videos_per_shard must be >= 1, got {videos_per_shard}")
    plans = []
    for subset in sorted(dataset.subsets):
        if not _SUBSET_NAME.match(subset):
            raise ValueError(f"subset name {subset!r} must be letters, digits or _")
        records = list(dataset.subsets[subset])
        if not records:
            continue
        order = np.random.default_rng(seed).permutation(len(records))
        num_shards = -(-len(records) // videos_per_shard)
        for index, chunk in enumerate(np.array_split(order, num_shards)):
            plans.append(ShardPlan(subset, index, num_shards,
                                   tuple(records[i] for i in chunk)))
    return plans


def _fingerprint(dataset):
    """SHA-256 of the classes and every subset's paths, labels and metadata."""
    content = {
        "classes": list(dataset.classes),
        "subsets": {
            subset: [[record.path, record.label, record.metadata] for record in records]
            for subset, records in sorted(dataset.subsets.items())
        },
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Settings:
    """What an output directory was prepared with, as stored in preparation.json.

    A rerun (by any runner) resumes only when every field is equal; shards
    holds the number of shards of every subset.
    """

    dataset: str
    dataset_fingerprint: str
    short_side: int
    upscale: bool
    flow: object
    jpeg_quality: int
    frames_fps: float
    videos_per_shard: int
    shuffle_seed: int
    shards: dict


def preparation_settings(dataset, plans, short_side, flow, jpeg_quality, upscale, frames_fps,
                         videos_per_shard):
    """Check the preparation arguments and return their Settings.

    Args:
        dataset: the VideoDataset being prepared.
        plans: its shard plan, from plan_shards(dataset, videos_per_shard).
        short_side, flow, jpeg_quality, upscale, frames_fps, videos_per_shard:
            as prepare_dataset takes them.

    Raises:
        ValueError: flow, jpeg_quality or short_side out of range.
    """
    if flow is not None and flow not in FLOW_METHODS:
        raise ValueError(f"flow must be None or one of {FLOW_METHODS}, got {flow!r}")
    if not 0 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in 0..100, got {jpeg_quality}")
    if short_side < 1:
        raise ValueError(f"short_side must be >= 1, got {short_side}")
    return Settings(
        dataset=dataset.name, dataset_fingerprint=_fingerprint(dataset),
        short_side=int(short_side), upscale=bool(upscale), flow=flow,
        jpeg_quality=int(jpeg_quality), frames_fps=float(frames_fps),
        videos_per_shard=int(videos_per_shard), shuffle_seed=SHUFFLE_SEED,
        shards={subset: sum(plan.subset == subset for plan in plans)
                for subset in sorted(dataset.subsets)},
    )


def _temporary_path(path):
    """A name next to `path` unique to this attempt: two attempts may write one file at once."""
    return f"{path}.{uuid.uuid4().hex}{INCOMPLETE_SUFFIX}"


def _write_json_atomically(path, content):
    temporary = _temporary_path(path)
    with tf.io.gfile.GFile(temporary, "w") as f:
        f.write(json.dumps(content, indent=2, sort_keys=True) + "\n")
    tf.io.gfile.rename(temporary, path, overwrite=True)


def read_json(path):
    """The parsed JSON file at `path` (local or any tf.io.gfile filesystem, e.g. gs://)."""
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def check_or_write_settings(output_dir, settings):
    """Write preparation.json, or refuse when the one there holds other settings.

    Returns:
        True when `output_dir` was already prepared (or started) with
        `settings`: a resume.

    Raises:
        ValueError: other settings there (each difference named), or a
            dataset.json without preparation.json.
    """
    path = os.path.join(output_dir, PREPARATION_JSON)
    current = dataclasses.asdict(settings)
    if not tf.io.gfile.exists(path):
        if tf.io.gfile.exists(os.path.join(output_dir, DATASET_JSON)):
            raise ValueError(
                f"{output_dir} holds a {DATASET_JSON} but no {PREPARATION_JSON}: it was not "
                "prepared by prepare_dataset; choose another output directory")
        _write_json_atomically(path, current)
        return False
    previous = read_json(path)
    differences = [
        f"{key}: {previous.get(key)!r} there, {value!r} now"
        for key, value in current.items() if previous.get(key) != value
    ]
    if differences:
        raise ValueError(
            f"{output_dir} was prepared with other settings ({path}): "
            + "; ".join(differences)
            + ". Use the same settings to resume, or another output directory.")
    return True


def shard_info_path(output_dir, subset, index, num_shards):
    """Path of a shard's sidecar JSON: OUTPUT_DIR/shards/<subset>-00003-of-00016.json."""
    name = f"{subset}-{index:05d}-of-{num_shards:05d}.json"
    return os.path.join(output_dir, SHARD_INFO_DIR, name)


def split_finished(output_dir, plans, names):
    """(finished, unfinished) plans; finished: the sidecar and every modality's file exist.

    Lists each folder once, rather than asking for every file (slow on gs://).
    """
    listings = {folder: set(tf.io.gfile.listdir(os.path.join(output_dir, folder)))
                for folder in (SHARD_INFO_DIR,) + tuple(names)}
    finished, unfinished = [], []
    for plan in plans:
        files = [(SHARD_INFO_DIR, shard_info_path(output_dir, plan.subset, plan.index,
                                                  plan.num_shards))]
        files += [(name, shard_path(output_dir, name, plan.subset, plan.index, plan.num_shards))
                  for name in names]
        done = all(os.path.basename(path) in listings[folder] for folder, path in files)
        (finished if done else unfinished).append(plan)
    return finished, unfinished


def remove_incomplete_files(output_dir, names):
    """Delete what interrupted writes left behind (names ending in .incomplete).

    Looks in `output_dir`, its shards/ folder and the folder of each modality
    in `names`; call it before any shard is written, never during a run.
    """
    for folder in ("", SHARD_INFO_DIR) + tuple(names):
        directory = os.path.join(output_dir, folder)
        for entry in tf.io.gfile.listdir(directory):
            if entry.endswith(INCOMPLETE_SUFFIX):
                tf.io.gfile.remove(os.path.join(directory, entry))


def _init_worker():
    cv2.setNumThreads(1)


def encode_in_order(encode, records, workers):
    """Yield encode(record) for each record, in order, computed by `workers` processes.

    `encode` must be picklable (a module-level function or a functools.partial
    of one), e.g. encode_video with fixed settings. With one worker the videos
    are encoded in this process (OpenCV uses its own threads). Otherwise a
    pool of spawned processes (one OpenCV thread each) keeps at most 4 videos
    per worker in flight, so memory stays bounded when one long video holds
    up the order.
    """
    if workers == 1:
        yield from map(encode, records)
        return
    records = iter(records)
    in_flight = deque()
    pool = concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker)

    def submit_next():
        record = next(records, None)
        if record is not None:
            in_flight.append((record.path, pool.submit(encode, record)))

    try:
        for _ in range(workers * _TASKS_IN_FLIGHT_PER_WORKER):
            submit_next()
        while in_flight:
            try:
                result = in_flight[0][1].result()
            except concurrent.futures.process.BrokenProcessPool:
                paths = [path for path, _ in in_flight]
                raise RuntimeError(
                    "a worker process died (killed, out of memory, or a crash inside the "
                    f"decoder) while encoding one of {paths}; finished shards are kept, "
                    "rerun to resume") from None
            in_flight.popleft()
            submit_next()
            yield result
    finally:
        pool.shutdown(cancel_futures=True)


def write_shard(output_dir, subset, index, num_shards, names, videos, on_video=None):
    """Write one shard of every modality, then its sidecar JSON; returns the sidecar dict.

    Each file is written under a name unique to this attempt (ending in
    .incomplete) and renamed when complete; the sidecar, written last, marks
    the shard finished.

    Args:
        output_dir: the prepared data set's root (local or gs://...).
        subset, index, num_shards: which shard.
        names: modalities, e.g. ("rgb", "flow_dis").
        videos: the shard's EncodedVideos, in plan order.
        on_video: called with each EncodedVideo once it is written, or None.

    Returns:
        {"subset", "index", "num_shards", "videos", "frames", "bytes",
        "skipped": [{"path", "reason"}], "truncated": [{"path", "frames",
        "expected_frames"}]}.
    """
    info_path = shard_info_path(output_dir, subset, index, num_shards)
    if tf.io.gfile.exists(info_path):
        tf.io.gfile.remove(info_path)
    final = {name: shard_path(output_dir, name, subset, index, num_shards) for name in names}
    temporary = {name: _temporary_path(path) for name, path in final.items()}
    writers = {name: tf.io.TFRecordWriter(path) for name, path in temporary.items()}
    info = {"subset": subset, "index": index, "num_shards": num_shards,
            "videos": 0, "frames": 0, "skipped": [], "truncated": []}
    for video in videos:
        if video.skip_reason is None:
            for name, writer in writers.items():
                writer.write(video.examples[name])
            info["videos"] += 1
            info["frames"] += video.frames
        else:
            info["skipped"].append({"path": video.path, "reason": video.skip_reason})
            logging.warning("skipped %s: %s", video.path, video.skip_reason)
        if video.truncated:
            info["truncated"].append({"path": video.path, "frames": video.frames,
                                      "expected_frames": video.expected_frames})
            logging.warning("truncated %s: %d of %s frames decoded", video.path,
                            video.frames, video.expected_frames)
        if on_video is not None:
            on_video(video)
    for writer in writers.values():
        writer.close()
    for name, path in final.items():
        tf.io.gfile.rename(temporary[name], path, overwrite=True)
    info["bytes"] = sum(tf.io.gfile.stat(path).length for path in final.values())
    _write_json_atomically(info_path, info)
    return info


def report_text(dataset_info, report):
    """report.txt: totals, per-subset counts, then every skipped and truncated video."""
    lines = [
        f"Prepared {dataset_info['name']}: {report['videos']} videos, "
        f"{report['frames']} frames written; {len(report['skipped'])} skipped, "
        f"{len(report['truncated'])} truncated.",
    ]
    for subset, counts in sorted(dataset_info["subsets"].items()):
        lines.append(f"  {subset}: {counts['videos']} videos, {counts['frames']} frames, "
                     f"{counts['shards']} shards")
    lines.append("")
    lines.append(f"Skipped ({len(report['skipped'])}):")
    lines += [f"  {item['subset']}  {item['path']}: {item['reason']}"
              for item in report["skipped"]]
    lines.append("")
    lines.append(f"Truncated, kept with the frames that decoded ({len(report['truncated'])}):")
    lines += [f"  {item['subset']}  {item['path']}: {item['frames']} of "
              f"{item['expected_frames']} frames" for item in report["truncated"]]
    return "\n".join(lines) + "\n"


def write_dataset_files(output_dir, name, classes, subsets, settings, names, infos):
    """Write dataset.json, report.json and report.txt from every shard's sidecar dict.

    Args:
        output_dir: the prepared data set's root (local or gs://...).
        name, classes: of the VideoDataset.
        subsets: every subset name (empty subsets included).
        settings: the Settings of the preparation.
        names: modalities, e.g. ("rgb", "flow_dis").
        infos: the sidecar dicts of all shards (see write_shard), in any order.

    Returns:
        The report dict: videos, frames, bytes, skip_reasons {reason:
        count}, skipped and truncated (each item with its subset).
    """
    infos = sorted(infos, key=lambda info: (info["subset"], info["index"]))
    counts = {}
    for subset in sorted(subsets):
        mine = [info for info in infos if info["subset"] == subset]
        videos = sum(info["videos"] for info in mine)
        counts[subset] = {
            "videos": videos,
            "frames": sum(info["frames"] for info in mine),
            "shards": len(mine),
            "skipped": sum(len(info["skipped"]) for info in mine),
            "truncated": sum(len(info["truncated"]) for info in mine),
        }
        if settings.flow is not None:
            counts[subset]["flow_frames"] = counts[subset]["frames"] - videos
    dataset_info = {
        "name": name,
        "classes": list(classes),
        "short_side": settings.short_side,
        "upscale": settings.upscale,
        "flow": settings.flow,
        "modalities": list(names),
        "jpeg_quality": settings.jpeg_quality,
        "frames_fps": settings.frames_fps,
        "subsets": counts,
    }
    skipped = [dict(item, subset=info["subset"]) for info in infos for item in info["skipped"]]
    truncated = [dict(item, subset=info["subset"])
                 for info in infos for item in info["truncated"]]
    report = {
        "videos": sum(info["videos"] for info in infos),
        "frames": sum(info["frames"] for info in infos),
        "bytes": sum(info["bytes"] for info in infos),
        "skip_reasons": dict(Counter(item["reason"] for item in skipped)),
        "skipped": skipped,
        "truncated": truncated,
    }
    _write_json_atomically(os.path.join(output_dir, DATASET_JSON), dataset_info)
    _write_json_atomically(os.path.join(output_dir, REPORT_JSON), report)
    with tf.io.gfile.GFile(os.path.join(output_dir, REPORT_TXT), "w") as f:
        f.write(report_text(dataset_info, report))
    return report


def prepare_dataset(dataset, output_dir, short_side=256, flow=None, workers=None,
                    videos_per_shard=DEFAULT_VIDEOS_PER_SHARD, jpeg_quality=90,
                    upscale=False, frames_fps=DEFAULT_FRAME_FOLDER_FPS):
    """Write every subset of `dataset` as sharded TFRecords under `output_dir`; resumable.

    Args:
        dataset: a keras_memdpc.video_record.VideoDataset.
        output_dir: a local path or gs://..., created if needed; a rerun
            with the same arguments resumes, keeping finished shards.
        short_side: short side of the stored frames (256 as the paper, 150
            for a fast variant).
        flow: None, "tvl1" (paper) or "dis" (fast): also write flow shards.
        workers: processes encoding videos (default os.cpu_count()); 1
            encodes in this process.
        videos_per_shard: most videos in one shard.
        jpeg_quality: 0-100.
        upscale: also enlarge videos whose short side is below short_side.
        frames_fps: frame rate recorded for frame-folder videos.

    Returns:
        A summary dict: videos, frames (RGB), skipped, skip_reasons {reason:
        count}, truncated, bytes (all shards), shards_written and
        shards_kept (this run), frames_encoded (this run), seconds (this
        run), frames_per_second (frames_encoded / seconds), output_dir.

    Raises:
        ValueError: bad arguments, or `output_dir` prepared with other settings.
        RuntimeError: a worker process died; finished shards are kept.
    """
    start = time.monotonic()
    workers = os.cpu_count() if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    output_dir = os.fspath(output_dir)
    plans = plan_shards(dataset, videos_per_shard)
    settings = preparation_settings(dataset, plans, short_side, flow, jpeg_quality, upscale,
                                    frames_fps, videos_per_shard)
    names = modalities(flow)
    tf.io.gfile.makedirs(output_dir)
    resuming = check_or_write_settings(output_dir, settings)
    for folder in (SHARD_INFO_DIR,) + names:
        tf.io.gfile.makedirs(os.path.join(output_dir, folder))
    remove_incomplete_files(output_dir, names)

    _, todo = split_finished(output_dir, plans, names)
    records = [record for plan in todo for record in plan.records]
    workers = max(1, min(workers, len(records)))
    logging.info("%s %s into %s: %d of %d shards to write (%d videos), %d workers",
                 "resuming" if resuming else "preparing", dataset.name, output_dir,
                 len(todo), len(plans), len(records), workers)
    encode = functools.partial(encode_video, short_side=short_side, flow=flow,
                               jpeg_quality=jpeg_quality, upscale=upscale,
                               frames_fps=frames_fps)
    progress = keras.utils.Progbar(
        len(records), unit_name="video", stateful_metrics=["frames/s"])
    frames_encoded = 0

    def on_video(video):
        nonlocal frames_encoded
        frames_encoded += video.frames
        rate = frames_encoded / max(time.monotonic() - start, 1e-9)
        progress.add(1, values=[("frames/s", rate)])

    with contextlib.closing(encode_in_order(encode, records, workers)) as encoded_videos:
        for plan in todo:
            write_shard(output_dir, plan.subset, plan.index, plan.num_shards, names,
                        itertools.islice(encoded_videos, len(plan.records)), on_video)
    infos = [read_json(shard_info_path(output_dir, plan.subset, plan.index, plan.num_shards))
             for plan in plans]
    report = write_dataset_files(output_dir, dataset.name, dataset.classes, dataset.subsets,
                                 settings, names, infos)
    seconds = time.monotonic() - start
    summary = {
        "output_dir": output_dir,
        "videos": report["videos"],
        "frames": report["frames"],
        "skipped": len(report["skipped"]),
        "skip_reasons": report["skip_reasons"],
        "truncated": len(report["truncated"]),
        "bytes": report["bytes"],
        "shards_written": len(todo),
        "shards_kept": len(plans) - len(todo),
        "frames_encoded": frames_encoded,
        "seconds": seconds,
        "frames_per_second": frames_encoded / seconds,
    }
    logging.info("prepared %s: %s", dataset.name, json.dumps(summary))
    return summary

