"""Prepare a video data set as sharded TFRecords (RGB JPEG frames, optional optical flow).

    python train/prepare_data.py --dataset=ucf101 --video_dir=UCF-101 \
        --split_dir=ucfTrainTestlist --split=1 --output_dir=data/ucf101_256
    python train/prepare_data.py --dataset=kinetics400 --video_dir=k400 \
        --annotations=train.csv,validate.csv --short_side=150 --output_dir=data/k400_150
    python train/prepare_data.py --dataset=folder --video_dir=my_videos --flow=dis \
        --output_dir=data/mine
    python train/prepare_data.py --dataset=frames --video_dir=jpeg_folders \
        --annotations=jpeg_folders/annotations.txt --output_dir=data/frames

Rerun the same command after an interruption to resume: finished shards are
kept. Skipped and truncated videos are listed in OUTPUT_DIR/report.txt.

By default (--runner=local) videos are encoded by a pool of worker processes
on this machine. --runner=direct, dataflow, flink or spark runs the same
preparation as an Apache Beam pipeline (pip install keras_memdpc[beam]) and
writes the same files; --beam_args passes further pipeline options. On
Google Cloud Dataflow:

    python train/prepare_data.py --dataset=kinetics400 --video_dir=/mnt/k400 \
        --annotations=train.csv,validate.csv --flow=tvl1 \
        --output_dir=gs://my-bucket/k400_256 --runner=dataflow \
        --beam_args="--project=my-project --region=europe-west4 \
          --temp_location=gs://my-bucket/tmp --setup_file=./pyproject.toml \
          --experiments=upload_graph"

The Dataflow workers open the videos with OpenCV at the paths the
annotations give: they must be on storage the workers can open as files (a
local disk or a mounted bucket, e.g. gcsfuse at the same path), while
--output_dir may be gs://. The workers also need keras_memdpc installed:
--setup_file as above (needs the `build` module) or a custom container
(--sdk_container_image).
"""
import functools
import os
import shlex

from absl import app, flags, logging

from keras_memdpc import readers
from keras_memdpc.data_preparation import DEFAULT_VIDEOS_PER_SHARD, prepare_dataset
from keras_memdpc.video_decoding import DEFAULT_FRAME_FOLDER_FPS
from keras_memdpc.video_record import AnnotationError

FLAGS = flags.FLAGS
flags.DEFINE_enum("dataset", None, ["ucf101", "hmdb51", "kinetics400", "oops", "folder", "frames"],
                  "Annotation format: an official data set, a <class>/<video> folder, "
                  "or JPEG frame folders.")
flags.DEFINE_string("video_dir", None,
                    "Folder of the videos (for --dataset=frames: of the frame folders).")
flags.DEFINE_string("split_dir", None,
                    "ucf101: ucfTrainTestlist/; hmdb51: testTrainMulti_7030_splits/.")
flags.DEFINE_integer("split", None, "ucf101 / hmdb51 split, 1-3 (default 1).")
flags.DEFINE_string("annotations", None,
                    "kinetics400: CSV files, comma-separated; oops: the annotation folder; "
                    "frames: an annotation file of 'folder first last label' lines (optional).")
flags.DEFINE_string("output_dir", None, "Where the shards, dataset.json and report go.")
flags.DEFINE_integer("short_side", 256, "Short side of the stored frames (150: fast variant).")
flags.DEFINE_bool("upscale", False, "Also enlarge videos whose short side is below --short_side.")
flags.DEFINE_enum("flow", "none", ["none", "tvl1", "dis"],
                  "Also store optical flow: TV-L1 (paper, slow) or DIS (fast).")
flags.DEFINE_enum("runner", "local", ["local", "direct", "dataflow", "flink", "spark"],
                  "local: a pool of processes on this machine; otherwise the Apache Beam "
                  "runner (direct: Beam on this machine).")
flags.DEFINE_string("beam_args", None,
                    "Further Beam pipeline options, one string, e.g. \"--project=p "
                    "--region=europe-west4 --temp_location=gs://b/tmp\".")
flags.DEFINE_integer("workers", None,
                     "--runner=local: encoding processes (default: all CPU cores).")
flags.DEFINE_integer("videos_per_shard", DEFAULT_VIDEOS_PER_SHARD, "Most videos per shard.")
flags.DEFINE_integer("jpeg_quality", 90, "JPEG quality, 0-100.")
flags.DEFINE_float("frames_fps", DEFAULT_FRAME_FOLDER_FPS,
                   "--dataset=frames: frame rate the frames were extracted at.")
flags.mark_flags_as_required(["dataset", "output_dir"])

_FLAGS_OF_DATASET = {
    "ucf101": ({"video_dir", "split_dir"}, {"split"}),
    "hmdb51": ({"video_dir", "split_dir"}, {"split"}),
    "kinetics400": ({"video_dir", "annotations"}, set()),
    "oops": ({"video_dir", "annotations"}, set()),
    "folder": ({"video_dir"}, set()),
    "frames": ({"video_dir"}, {"annotations", "frames_fps"}),
}
_DATASET_FLAGS = ("video_dir", "split_dir", "split", "annotations")


def _check_flags(dataset):
    """Raise app.UsageError naming a flag the dataset needs but lacks, or does not use."""
    required, optional = _FLAGS_OF_DATASET[dataset]
    for name in sorted(required):
        if FLAGS[name].value is None:
            raise app.UsageError(f"--{name} is required for --dataset={dataset}")
    for name in _DATASET_FLAGS + ("frames_fps",):
        if FLAGS[name].present and name not in required | optional:
            raise app.UsageError(f"--{name} is not used by --dataset={dataset}")
    if FLAGS.split is not None and FLAGS.split not in (1, 2, 3):
        raise app.UsageError(f"--split must be 1, 2 or 3, got {FLAGS.split}")
    if FLAGS.runner == "local" and FLAGS.beam_args is not None:
        raise app.UsageError("--beam_args needs a Beam --runner (direct, dataflow, flink, spark)")
    if FLAGS.runner != "local" and FLAGS.workers is not None:
        raise app.UsageError(f"--workers is not used by --runner={FLAGS.runner}; pass "
                             "worker options of the runner in --beam_args")
    if not os.path.isdir(FLAGS.video_dir):
        raise app.UsageError(f"--video_dir={FLAGS.video_dir}: no such directory")


def _read_dataset(dataset):
    split = FLAGS.split or 1
    if dataset == "ucf101":
        return readers.read_ucf101(FLAGS.split_dir, FLAGS.video_dir, split)
    if dataset == "hmdb51":
        return readers.read_hmdb51(FLAGS.split_dir, FLAGS.video_dir, split)
    if dataset == "kinetics400":
        csv_paths = [path for path in FLAGS.annotations.split(",") if path]
        return readers.read_kinetics400(csv_paths, FLAGS.video_dir)
    if dataset == "oops":
        return readers.read_oops(FLAGS.annotations, FLAGS.video_dir)
    if dataset == "folder":
        return readers.read_video_folder(FLAGS.video_dir)
    return readers.read_frame_folders(FLAGS.video_dir, FLAGS.annotations)


def _preparation(runner):
    """prepare_dataset, or prepare_dataset_with_beam bound to `runner` and --beam_args."""
    if runner == "local":
        return functools.partial(prepare_dataset, workers=FLAGS.workers)
    try:
        from keras_memdpc.beam_preparation import prepare_dataset_with_beam
    except ModuleNotFoundError as error:
        if error.name != "apache_beam":
            raise
        logging.error("--runner=%s needs Apache Beam, which is not installed: "
                      "pip install keras_memdpc[beam]", runner)
        raise SystemExit(1) from None
    try:
        pipeline_args = shlex.split(FLAGS.beam_args or "")
    except ValueError as error:
        raise app.UsageError(f"--beam_args={FLAGS.beam_args!r}: {error}") from None
    return functools.partial(prepare_dataset_with_beam, runner=runner,
                             pipeline_args=pipeline_args)


def main(argv):
    del argv
    _check_flags(FLAGS.dataset)
    prepare = _preparation(FLAGS.runner)
    try:
        dataset = _read_dataset(FLAGS.dataset)
        summary = prepare(
            dataset, FLAGS.output_dir, short_side=FLAGS.short_side,
            flow=None if FLAGS.flow == "none" else FLAGS.flow,
            videos_per_shard=FLAGS.videos_per_shard, jpeg_quality=FLAGS.jpeg_quality,
            upscale=FLAGS.upscale, frames_fps=FLAGS.frames_fps)
    except (AnnotationError, OSError, ValueError) as error:
        logging.error("%s", error)
        raise SystemExit(1) from None
    print(
        "\nPrepared {} videos, {} frames ({:.1f} MB) in {}; {} skipped, {} truncated.\n"
        "  this run: {} shards written, {} kept, {:.0f} s, {:.0f} frames/s.\n"
        "  details: {}/report.txt".format(
            summary["videos"], summary["frames"], summary["bytes"] / 1e6,
            summary["output_dir"], summary["skipped"], summary["truncated"],
            summary["shards_written"], summary["shards_kept"], summary["seconds"],
            summary["frames_per_second"], summary["output_dir"],
        )
    )


if __name__ == "__main__":
    app.run(main)
