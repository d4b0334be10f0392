"""Prepare a VideoDataset as sharded TFRecords with Apache Beam (direct, Dataflow, Flink, Spark).

The same preparation as keras_memdpc.data_preparation.prepare_dataset, for
data sets one machine cannot encode in time (Kinetics-400: 306k videos, TV-L1
flow on the order of 10,000 core-hours). Only the pipeline lives here: the
per-video function (`encode_video`), the shard plan, the settings check and
the writing of shards, sidecars and reports are those of data_preparation,
and so is the output layout:

    preparation.json                         the settings, written first
    rgb/<subset>-00003-of-00016.tfrecord     (and flow_tvl1/ or flow_dis/)
    shards/<subset>-00003-of-00016.json      per shard: counts, skips; marks it finished
    dataset.json                             name, classes, settings, per-subset counts
    report.json, report.txt                  skipped and truncated videos with reasons

so for the same settings both runners write the same files, and either one
resumes the other's output directory.

Before the pipeline, this process checks (or writes) preparation.json,
removes leftover temporary files and lists the finished shards. The pipeline:

    Create((shard, position, record) for every video of an unfinished shard)
      -> Reshuffle -> ParDo(encode_video) -> GroupByKey(shard)
      -> write the shard: its videos in plan order, to a temporary name renamed
         when complete, then its sidecar JSON (last: it marks the shard finished)
    Create(finished shards) -> read their sidecar JSON
    both -> Flatten -> ToList -> write dataset.json, report.json, report.txt

Each video is encoded (RGB frames [height, width, 3] decoded, resized to a
short side of `short_side` and JPEG-encoded; with flow, the flow images too)
by whichever worker gets it, with one OpenCV thread (set in the encoding
DoFn's setup: a worker already runs one encoding per core); a shard is
written by one worker. The counters videos_encoded and frames_encoded
(namespace keras_memdpc.beam_preparation) show progress in the runner's
monitoring page.

All files are written with tf.io.gfile, so `output_dir` may be a gs:// path
on Dataflow. The videos are opened with OpenCV: workers must see them at
the paths of the records (a local disk or a mounted bucket). Workers also
need keras_memdpc itself, e.g. `--setup_file=pyproject.toml` (needs the
`build` module) or `--sdk_container_image`. For data sets of ~100k videos
or more, the video list makes the Dataflow job graph large: pass
`--experiments=upload_graph`.
"""

import functools
import json
import os
import time

import apache_beam as beam
import cv2
import tensorflow as tf
from absl import logging
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState

from keras_memdpc.data_preparation import (
    DEFAULT_VIDEOS_PER_SHARD,
    REPORT_JSON,
    SHARD_INFO_DIR,
    check_or_write_settings,
    encode_video,
    modalities,
    plan_shards,
    preparation_settings,
    read_json,
    remove_incomplete_files,
    shard_info_path,
    split_finished,
    write_dataset_files,
    write_shard,
)
from keras_memdpc.video_decoding import DEFAULT_FRAME_FOLDER_FPS

RUNNERS = {
    "direct": "DirectRunner",
    "dataflow": "DataflowRunner",
    "flink": "FlinkRunner",
    "spark": "SparkRunner",
}
_METRICS_NAMESPACE = "keras_memdpc.beam_preparation"


class _EncodeKeyed(beam.DoFn):
    """(shard, position, record) -> (shard, (position, EncodedVideo)).

    setup() gives OpenCV one thread, as the local runner's worker processes
    do: a Beam worker already runs one encoding per core.
    """

    def __init__(self, encode):
        self._encode = encode

    def setup(self):
        cv2.setNumThreads(1)

    def process(self, item):
        shard, position, record = item
        video = self._encode(record)
        Metrics.counter(_METRICS_NAMESPACE, "videos_encoded").inc()
        yield shard, (position, video)


def _write_grouped_shard(output_dir, names, grouped):
    """Write one shard from its GroupByKey output; returns its sidecar dict.

    Args:
        output_dir: the prepared data set's root.
        names: modalities, e.g. ("rgb", "flow_dis").
        grouped: ((subset, index, num_shards), [(position, EncodedVideo), ...])
            in any order; the videos are written in position order.
    """
    (subset, index, num_shards), positioned = grouped
    videos = [video for _, video in sorted(positioned, key=lambda item: item[0])]
    info = write_shard(output_dir, subset, index, num_shards, names, videos)
    Metrics.counter(_METRICS_NAMESPACE, "frames_encoded").inc(info["frames"])
    return info


def _counter(result, name):
    """Committed (else attempted) total of one of this module's counters; 0 if unreported."""
    metric_filter = MetricsFilter().with_namespace(_METRICS_NAMESPACE).with_name(name)
    return sum(counter.result for counter in result.metrics().query(metric_filter)["counters"])


def prepare_dataset_with_beam(dataset, output_dir, short_side=256, flow=None, jpeg_quality=90,
                              videos_per_shard=DEFAULT_VIDEOS_PER_SHARD, upscale=False,
                              frames_fps=DEFAULT_FRAME_FOLDER_FPS, runner="direct",
                              pipeline_args=()):
    """Write every subset of `dataset` as sharded TFRecords under `output_dir` with Beam.

    The shards, their sidecars, dataset.json and the report are those that
    keras_memdpc.data_preparation.prepare_dataset writes with the same
    settings. Blocks until the pipeline has finished.

    Args:
        dataset: a keras_memdpc.video_record.VideoDataset.
        output_dir: a local path, or gs://... on Dataflow; a rerun with the
            same arguments (by either runner) resumes, keeping finished shards.
        short_side: short side of the stored frames.
        flow: None, "tvl1" or "dis": also write flow shards.
        jpeg_quality: 0-100.
        videos_per_shard: most videos in one shard.
        upscale: also enlarge videos whose short side is below short_side.
        frames_fps: frame rate recorded for frame-folder videos.
        runner: "direct" (Beam's DirectRunner; tests and small runs),
            "dataflow", "flink" or "spark".
        pipeline_args: command-line style Beam options, e.g. ("--project=p",
            "--region=us-central1", "--temp_location=gs://b/tmp") for
            Dataflow, ("--flink_master=host:8081",) for Flink,
            ("--direct_num_workers=4", "--direct_running_mode=multi_processing")
            for the direct runner. Not --runner: use `runner`.

    Returns:
        A summary dict: videos, frames (RGB), skipped, skip_reasons {reason:
        count}, truncated, bytes (all shards), shards_written and
        shards_kept (this run), frames_encoded (this run, from the
        pipeline's metrics), seconds (this run), frames_per_second,
        output_dir, runner.

    Raises:
        ValueError: bad arguments, or `output_dir` prepared with other settings.
        RuntimeError: the pipeline did not finish; finished shards are kept.
    """
    start = time.monotonic()
    if runner not in RUNNERS:
        raise ValueError(f"runner must be one of {sorted(RUNNERS)}, got {runner!r}")
    pipeline_args = list(pipeline_args)
    if any(arg == "--runner" or arg.startswith("--runner=") for arg in pipeline_args):
        raise ValueError(f"pass the runner as runner=..., not in pipeline_args: {pipeline_args}")
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
    kept, todo = split_finished(output_dir, plans, names)
    videos = [((plan.subset, plan.index, plan.num_shards), position, record)
              for plan in todo for position, record in enumerate(plan.records)]
    logging.info("%s %s into %s with the %s runner: %d of %d shards to write (%d videos)",
                 "resuming" if resuming else "preparing", dataset.name, output_dir,
                 runner, len(todo), len(plans), len(videos))

    encode = functools.partial(encode_video, short_side=short_side, flow=flow,
                               jpeg_quality=jpeg_quality, upscale=upscale,
                               frames_fps=frames_fps)
    options = PipelineOptions(pipeline_args, runner=RUNNERS[runner])
    pipeline = beam.Pipeline(options=options)
    written = (
        pipeline
        | "Videos" >> beam.Create(videos, reshuffle=False)
        | "Spread" >> beam.Reshuffle()
        | "Encode" >> beam.ParDo(_EncodeKeyed(encode))
        | "GroupByShard" >> beam.GroupByKey()
        | "WriteShard" >> beam.Map(functools.partial(_write_grouped_shard, output_dir, names))
    )
    kept_infos = (
        pipeline
        | "FinishedShards" >> beam.Create(
            [shard_info_path(output_dir, plan.subset, plan.index, plan.num_shards)
             for plan in kept], reshuffle=False)
        | "ReadSidecar" >> beam.Map(read_json)
    )
    _ = (
        (written, kept_infos)
        | "AllShards" >> beam.Flatten()
        | "Collect" >> beam.combiners.ToList()
        | "WriteDatasetFiles" >> beam.Map(functools.partial(
            write_dataset_files, output_dir, dataset.name, tuple(dataset.classes),
            tuple(sorted(dataset.subsets)), settings, names))
    )
    # The direct runner may call _EncodeKeyed.setup in this process: restore its OpenCV threads.
    opencv_threads = cv2.getNumThreads()
    try:
        result = pipeline.run()
        state = result.wait_until_finish()
    finally:
        cv2.setNumThreads(opencv_threads)
    if state != PipelineState.DONE:
        raise RuntimeError(
            f"the Beam pipeline ended in state {state} (runner {runner}); finished shards "
            f"are kept in {output_dir}, rerun to resume")
    report = read_json(os.path.join(output_dir, REPORT_JSON))
    frames_encoded = _counter(result, "frames_encoded")
    seconds = time.monotonic() - start
    summary = {
        "output_dir": output_dir,
        "runner": runner,
        "videos": report["videos"],
        "frames": report["frames"],
        "skipped": len(report["skipped"]),
        "skip_reasons": report["skip_reasons"],
        "truncated": len(report["truncated"]),
        "bytes": report["bytes"],
        "shards_written": len(todo),
        "shards_kept": len(kept),
        "frames_encoded": frames_encoded,
        "seconds": seconds,
        "frames_per_second": frames_encoded / seconds,
    }
    logging.info("prepared %s: %s", dataset.name, json.dumps(summary))
    return summary
