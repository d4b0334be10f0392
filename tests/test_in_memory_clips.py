import numpy as np
import pytest

from keras_memdpc.in_memory_clips import clip_dataset, sample_frame_indices, stack_videos


def numbered_videos(count=3, frames=50, size=4):
    """Videos whose pixel values encode (video, frame, column)."""
    videos = np.zeros((count, frames, size, size, 3), np.uint8)
    for v in range(count):
        for f in range(frames):
            videos[v, f, :, :, 0] = v
            videos[v, f, :, :, 1] = f
            videos[v, f, :, :, 2] = np.arange(size)[None, :]
    return videos


def test_indices_stride_and_pad_with_the_last_frame():
    np.testing.assert_array_equal(sample_frame_indices(100, 4, 3, 10), [10, 13, 16, 19])
    np.testing.assert_array_equal(sample_frame_indices(8, 5, 3, 0), [0, 3, 6, 7, 7])


def test_training_clips_are_strided_blocks_with_one_flip_per_clip():
    dataset = clip_dataset(
        numbered_videos(), num_blocks=2, block_length=3, batch_size=2, seed=1,
        colour_augmentation=False,
    )
    seen_flips = set()
    for batch in dataset.take(10):
        batch = batch.numpy()
        assert batch.shape == (2, 2, 3, 4, 4, 3) and batch.dtype == np.uint8
        for clip in batch:
            frames = clip.reshape(6, 4, 4, 3)
            steps = np.diff(frames[:, 0, 0, 1].astype(int))
            assert set(steps) <= {0, 3}  # stride 3, padded at the end
            assert len(set(frames[:, 0, 0, 0])) == 1  # one video per clip
            columns = frames[:, 0, :, 2]
            assert (columns == columns[0]).all()  # same flip for every frame
            seen_flips.add(columns[0, 0] == 3)
    assert seen_flips == {True, False}


def test_training_sampling_is_deterministic_by_seed():
    first = [b.numpy() for b in clip_dataset(numbered_videos(), 2, 3, 2, seed=5).take(4)]
    again = [b.numpy() for b in clip_dataset(numbered_videos(), 2, 3, 2, seed=5).take(4)]
    other = [b.numpy() for b in clip_dataset(numbered_videos(), 2, 3, 2, seed=6).take(4)]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_evaluation_takes_the_centred_clip_once():
    batches = list(clip_dataset(numbered_videos(), 2, 3, 1, training=False))
    assert len(batches) == 3
    frames = batches[1].numpy()[0].reshape(6, 4, 4, 3)[:, 0, 0, 1]
    latest_start = 50 - (3 * 5 + 1)
    np.testing.assert_array_equal(frames, latest_start // 2 + 3 * np.arange(6))


def test_videos_of_different_shapes_are_rejected():
    with pytest.raises(ValueError, match="one shape"):
        stack_videos([np.zeros((5, 4, 4, 3), np.uint8), np.zeros((6, 4, 4, 3), np.uint8)])
