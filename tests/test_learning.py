"""The model really learns on the synthetic set (DESIGN.md section 2 dynamics)."""

import math

import keras

from keras_memdpc import AdamL2, MemDPC, synthetic_videos
from keras_memdpc.in_memory_clips import clip_dataset, stack_videos

BATCH, PRED_STEPS, SIZE = 8, 3, 48  # 48 px gives a 2 x 2 feature grid


def synthetic(videos_per_class):
    """(train videos, test videos) of the synthetic set held in memory."""
    items = synthetic_videos.make_dataset(
        videos_per_class=videos_per_class, num_frames=150, size=SIZE
    )
    return tuple(
        stack_videos([item["frames"] for item in items if item["split"] == split])
        for split in ("train", "test")
    )


def train(model, videos, steps, colour_augmentation, seed=0):
    data = clip_dataset(
        videos, 8, 5, BATCH, training=True, seed=seed,
        colour_augmentation=colour_augmentation,
    )
    return model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0).history


def test_loss_leaves_the_position_plateau_and_pretext_accuracy_rises():
    keras.utils.set_random_seed(0)
    train_videos, test_videos = synthetic(videos_per_class=6)
    model = MemDPC(image_size=SIZE, pred_steps=PRED_STEPS, seed=0)
    model.compile(optimizer=AdamL2(learning_rate=1e-3, l2=1e-5))
    held_out = clip_dataset(test_videos, 8, 5, BATCH, training=False)
    initial = model.evaluate(held_out, return_dict=True, verbose=0)
    rows = BATCH * PRED_STEPS * 4
    assert initial["loss"] > 2 * math.log(rows) - 1.0
    train(model, train_videos, 160, colour_augmentation=False)
    late = train(model, train_videos, 40, colour_augmentation=False, seed=1)
    final = model.evaluate(held_out, return_dict=True, verbose=0)
    plateau = 2 * math.log(BATCH * PRED_STEPS)
    assert late["loss"][0] < plateau - 1.0, (late, plateau)
    assert late["loss"][0] < 0.6 * initial["loss"], (late, initial)
    assert final["top1"] > 10 / rows, final  # chance is 1 / rows
