"""Nearest-neighbour video retrieval: every test video queries the training videos.

    python train/retrieve.py --checkpoint=runs/pretrain/best.keras   # synthetic set
    python train/retrieve.py --checkpoint=none                       # random init
    python train/retrieve.py --checkpoint=runs/r18/best.keras --data=data/ucf101 \
        --output_dir=runs/r18/retrieval

Writes OUTPUT_DIR/retrieval.json (R@1, R@5, R@10, R@20, R@50, queries,
gallery) and OUTPUT_DIR/retrieval.png (queries and their 3 nearest videos).
"""

import json
import os

import keras
from absl import app, flags

from keras_memdpc import synthetic_videos
from keras_memdpc.pretraining import PretrainConfig, prepare_synthetic
from keras_memdpc.retrieval import load_memdpc, retrieval_report
from keras_memdpc.video_tfrecord import MODALITIES

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint", "none", "A MemDPC .keras file, or 'none' for random init.")
flags.DEFINE_string("data", "synthetic",
                    "A prepared data set, or 'synthetic': the built-in set, prepared "
                    "under OUTPUT_DIR/synthetic_data at the model's frame size.")
flags.DEFINE_string("output_dir", "runs/retrieval", "Where retrieval.json and .png go.")
flags.DEFINE_enum("network", "resnet18", ["resnet18", "resnet34"], "Random init: encoder.")
flags.DEFINE_integer("image_size", 32, "Random init: frame size (32: the synthetic set's).")
flags.DEFINE_integer("num_blocks", 8, "Random init: blocks per clip.")
flags.DEFINE_integer("block_length", 5, "Random init: frames per block.")
flags.DEFINE_integer("seed", 0, "Random init and synthetic set seed.")
flags.DEFINE_integer("synthetic_videos_per_class", synthetic_videos.DEFAULT_VIDEOS_PER_CLASS,
                     "Size of the synthetic set.")
flags.DEFINE_integer("batch_size", 8, "Windows per forward pass.")
flags.DEFINE_string("query_subset", None, "Default: test, else val or validation.")
flags.DEFINE_string("gallery_subset", "train", "The subset searched.")
flags.DEFINE_enum("modality", "rgb", list(MODALITIES), "Shards the model reads.")
flags.DEFINE_integer("picture_queries", 8, "Queries shown in retrieval.png.", lower_bound=1)


def main(argv):
    del argv
    keras.utils.set_random_seed(FLAGS.seed)
    model = load_memdpc(
        FLAGS.checkpoint, network=FLAGS.network, image_size=FLAGS.image_size,
        num_blocks=FLAGS.num_blocks, block_length=FLAGS.block_length, seed=FLAGS.seed,
    )
    data = FLAGS.data
    if data == "synthetic":
        config = PretrainConfig(
            image_size=model.image_size, num_blocks=model.num_blocks,
            block_length=model.block_length, seed=FLAGS.seed,
            synthetic_videos_per_class=FLAGS.synthetic_videos_per_class,
        )
        data = prepare_synthetic(config, os.path.join(FLAGS.output_dir, "synthetic_data"))
    report = retrieval_report(
        model, data, FLAGS.output_dir, batch_size=FLAGS.batch_size,
        query_subset=FLAGS.query_subset, gallery_subset=FLAGS.gallery_subset,
        modality=FLAGS.modality, picture_queries=FLAGS.picture_queries,
    )
    print(json.dumps(report, indent=2))
    print(f"wrote {FLAGS.output_dir}/retrieval.json and retrieval.png")


if __name__ == "__main__":
    app.run(main)
