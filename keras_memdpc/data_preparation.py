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
under a temporary name (.incomplete), renamed when complete, then its sidecar
JSON is written atomically. A rerun with the same settings keeps finished
shards and writes only the missing ones; a rerun with different settings is
refused. Videos that are missing, unreadable or empty are skipped; videos that
stop decoding early keep the frames that decoded and are flagged truncated;
both are counted and listed in the report, never an abort.
"""

import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import json
import multiprocessing
import os
import re
import time
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
class _Settings:
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


def _write_json_atomically(path, content):
    temporary = path + INCOMPLETE_SUFFIX
    with open(temporary, "w") as f:
        json.dump(content, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(temporary, path)


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def _check_or_write_settings(output_dir, settings):
    """Write preparation.json, or refuse when the one there holds other settings."""
    path = os.path.join(output_dir, PREPARATION_JSON)
    current = dataclasses.asdict(settings)
    if not os.path.exists(path):
        if os.path.exists(os.path.join(output_dir, DATASET_JSON)):
            raise ValueError(
                f"{output_dir} holds a {DATASET_JSON} but no {PREPARATION_JSON}: it was not "
                "prepared by prepare_dataset; choose another output directory")
        _write_json_atomically(path, current)
        return False
    previous = _read_json(path)
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


def _shard_info_path(output_dir, plan):
    return os.path.join(output_dir, SHARD_INFO_DIR, plan.name + ".json")


def _is_finished(output_dir, plan, names):
    return os.path.exists(_shard_info_path(output_dir, plan)) and all(
        os.path.exists(shard_path(output_dir, name, plan.subset, plan.index, plan.num_shards))
        for name in names)


def _remove_incomplete_files(output_dir, names):
    for folder in ("", SHARD_INFO_DIR) + tuple(names):
        directory = os.path.join(output_dir, folder)
        for entry in os.listdir(directory):
            if entry.endswith(INCOMPLETE_SUFFIX):
                os.remove(os.path.join(directory, entry))


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


def _write_shard(output_dir, plan, names, encoded_videos, on_video):
    """Write one shard of every modality from the next videos of `encoded_videos`."""
    info_path = _shard_info_path(output_dir, plan)
    if os.path.exists(info_path):
        os.remove(info_path)
    final = {name: shard_path(output_dir, name, plan.subset, plan.index, plan.num_shards)
             for name in names}
    writers = {name: tf.io.TFRecordWriter(path + INCOMPLETE_SUFFIX)
               for name, path in final.items()}
    info = {"subset": plan.subset, "index": plan.index, "num_shards": plan.num_shards,
            "videos": 0, "frames": 0, "skipped": [], "truncated": []}
    for _ in plan.records:
        video = next(encoded_videos)
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
        on_video(video)
    for writer in writers.values():
        writer.close()
    for path in final.values():
        os.replace(path + INCOMPLETE_SUFFIX, path)
    info["bytes"] = sum(os.path.getsize(path) for path in final.values())
    _write_json_atomically(info_path, info)


def _report_text(dataset_info, report):
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


def _write_dataset_files(output_dir, dataset, plans, settings, names):
    """dataset.json, report.json and report.txt from every shard's sidecar."""
    infos = [_read_json(_shard_info_path(output_dir, plan)) for plan in plans]
    subsets = {}
    for subset in sorted(dataset.subsets):
        mine = [info for info in infos if info["subset"] == subset]
        videos = sum(info["videos"] for info in mine)
        subsets[subset] = {
            "videos": videos,
            "frames": sum(info["frames"] for info in mine),
            "shards": len(mine),
            "skipped": sum(len(info["skipped"]) for info in mine),
            "truncated": sum(len(info["truncated"]) for info in mine),
        }
        if settings.flow is not None:
            subsets[subset]["flow_frames"] = subsets[subset]["frames"] - videos
    dataset_info = {
        "name": dataset.name,
        "classes": list(dataset.classes),
        "short_side": settings.short_side,
        "upscale": settings.upscale,
        "flow": settings.flow,
        "modalities": list(names),
        "jpeg_quality": settings.jpeg_quality,
        "frames_fps": settings.frames_fps,
        "subsets": subsets,
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
    with open(os.path.join(output_dir, REPORT_TXT), "w") as f:
        f.write(_report_text(dataset_info, report))
    return report


def prepare_dataset(dataset, output_dir, short_side=256, flow=None, workers=None,
                    videos_per_shard=DEFAULT_VIDEOS_PER_SHARD, jpeg_quality=90,
                    upscale=False, frames_fps=DEFAULT_FRAME_FOLDER_FPS):
    """Write every subset of `dataset` as sharded TFRecords under `output_dir`; resumable.

    Args:
        dataset: a keras_memdpc.video_record.VideoDataset.
        output_dir: created if needed; a rerun with the same arguments
            resumes, keeping finished shards.
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
    if flow is not None and flow not in FLOW_METHODS:
        raise ValueError(f"flow must be None or one of {FLOW_METHODS}, got {flow!r}")
    if not 0 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in 0..100, got {jpeg_quality}")
    if short_side < 1:
        raise ValueError(f"short_side must be >= 1, got {short_side}")
    workers = os.cpu_count() if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    output_dir = os.fspath(output_dir)
    plans = plan_shards(dataset, videos_per_shard)
    settings = _Settings(
        dataset=dataset.name, dataset_fingerprint=_fingerprint(dataset),
        short_side=int(short_side), upscale=bool(upscale), flow=flow,
        jpeg_quality=int(jpeg_quality), frames_fps=float(frames_fps),
        videos_per_shard=int(videos_per_shard), shuffle_seed=SHUFFLE_SEED,
        shards={subset: sum(plan.subset == subset for plan in plans)
                for subset in sorted(dataset.subsets)},
    )
    names = modalities(flow)
    os.makedirs(output_dir, exist_ok=True)
    resuming = _check_or_write_settings(output_dir, settings)
    for folder in (SHARD_INFO_DIR,) + names:
        os.makedirs(os.path.join(output_dir, folder), exist_ok=True)
    _remove_incomplete_files(output_dir, names)

    todo = [plan for plan in plans if not _is_finished(output_dir, plan, names)]
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
            _write_shard(output_dir, plan, names, encoded_videos, on_video)
    report = _write_dataset_files(output_dir, dataset, plans, settings, names)
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

