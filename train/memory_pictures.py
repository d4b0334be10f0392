"""Pictures of the learned memory (paper appendix E) for one or several checkpoints.

    python train/memory_pictures.py --checkpoint=runs/pretrain/best.keras
    python train/memory_pictures.py --checkpoint=runs/a/last.keras,runs/b/last.keras \
        --data=data/ucf101 --slots=24,37,213 --output_dir=runs/memory

Writes OUTPUT_DIR/tsne.png (addressing probabilities of the training videos,
one panel per checkpoint) and, per checkpoint, OUTPUT_DIR/<name>/slots.png
(the videos nearest to each chosen slot), slot_norms.png and memory.json.
"""

import os

from absl import app, flags

from keras_memdpc import synthetic_videos
from keras_memdpc.memory_pictures import (
    NEAREST_VIDEOS,
    TSNE_CLASSES,
    checkpoint_names,
    memory_pictures,
)
from keras_memdpc.pretraining import PretrainConfig, prepare_synthetic
from keras_memdpc.retrieval import load_memdpc
from keras_memdpc.video_tfrecord import MODALITIES, read_dataset_json

FLAGS = flags.FLAGS
flags.DEFINE_list("checkpoint", None, "MemDPC .keras files, comma-separated.")
flags.DEFINE_string("data", "synthetic",
                    "A prepared data set, or 'synthetic': the built-in set, prepared "
                    "under OUTPUT_DIR/synthetic_data at the first model's frame size.")
flags.DEFINE_string("output_dir", "runs/memory_pictures", "Where the pictures go.")
flags.DEFINE_list("slots", None, "Memory slots to show (default: the 5 most addressed).")
flags.DEFINE_string("subset", "train", "The videos pictured.")
flags.DEFINE_integer("count", NEAREST_VIDEOS, "Nearest videos per slot.", lower_bound=1)
flags.DEFINE_integer("tsne_classes", TSNE_CLASSES, "Classes in the t-SNE.", lower_bound=1)
flags.DEFINE_integer("batch_size", 8, "Windows per forward pass.")
flags.DEFINE_enum("modality", "rgb", list(MODALITIES), "Shards the models read.")
flags.DEFINE_integer("seed", 0, "t-SNE, class choice and synthetic set seed.")
flags.DEFINE_integer("synthetic_videos_per_class", synthetic_videos.DEFAULT_VIDEOS_PER_CLASS,
                     "Size of the synthetic set.")
flags.mark_flag_as_required("checkpoint")


def main(argv):
    del argv
    models = [load_memdpc(path) for path in FLAGS.checkpoint]
    data = FLAGS.data
    if data == "synthetic":
        first = models[0]
        config = PretrainConfig(
            image_size=first.image_size, num_blocks=first.num_blocks,
            block_length=first.block_length, seed=FLAGS.seed,
            synthetic_videos_per_class=FLAGS.synthetic_videos_per_class,
        )
        data = prepare_synthetic(config, os.path.join(FLAGS.output_dir, "synthetic_data"))
    slots = None if FLAGS.slots is None else [int(slot) for slot in FLAGS.slots]
    summary = memory_pictures(
        list(zip(checkpoint_names(FLAGS.checkpoint), models)), data, FLAGS.output_dir,
        slots=slots, subset=FLAGS.subset, batch_size=FLAGS.batch_size,
        count=FLAGS.count, tsne_classes=FLAGS.tsne_classes, modality=FLAGS.modality,
        seed=FLAGS.seed,
    )
    classes = read_dataset_json(data)["classes"]
    for name, memory in summary.items():
        print(f"{name}: {memory['memory_size']} slots, addressing of {memory['videos']} "
              f"{FLAGS.subset} videos")
        for slot, found in memory["slots"].items():
            nearest = ", ".join(f"{classes[video['label']]} {video['p']:.3f}"
                                for video in found["nearest"])
            print(f"  slot {slot}: norm {found['norm']:.2f}, mean p {found['mean_p']:.4f}; "
                  f"nearest videos (p): {nearest}")
    print(f"wrote {FLAGS.output_dir}/tsne.png and, per checkpoint, slots.png, "
          "slot_norms.png, memory.json")


if __name__ == "__main__":
    app.run(main)
