"""Two-stream late fusion of classify.py test runs: average per-video probabilities.

    python train/fuse.py --predictions=runs/rgb/predictions.npz,runs/flow/predictions.npz \
        --output=runs/two_stream.json
"""

import json
import os

from absl import app, flags, logging

from keras_memdpc.late_fusion import fusion_report

FLAGS = flags.FLAGS
flags.DEFINE_list("predictions", None, "predictions.npz of each stream (two or more).", required=True)
flags.DEFINE_string("output", None, "JSON file to write the fused and per-stream accuracies to.", required=True)


def main(argv):
    del argv
    try:
        report = fusion_report(FLAGS.predictions)
    except (FileNotFoundError, ValueError) as error:
        logging.error("%s", error)
        raise SystemExit(1) from None
    directory = os.path.dirname(FLAGS.output)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(FLAGS.output, "w") as f:
        json.dump(report, f, indent=2)
    for stream in report["streams"]:
        print(f"{stream['modality'] or stream['file']}: top-1 {stream['top1']:.3f}, "
              f"top-5 {stream['top5']:.3f}")
    fused = report["fused"]
    print(f"fused ({report['num_videos']} videos): top-1 {fused['top1']:.3f}, "
          f"top-5 {fused['top5']:.3f} -> {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
