import keras
import numpy as np
import pytest

from keras_memdpc import MemDPC
from keras_memdpc.nan_guard import NaNLossError, RaiseOnNaN


def test_nan_loss_stops_before_the_checkpoint_is_overwritten(tmp_path):
    model = MemDPC(image_size=32, num_blocks=4, block_length=3, pred_steps=2, memory_size=16)
    model.compile(optimizer=keras.optimizers.Adam(1e-4))
    clips = np.random.default_rng(0).normal(size=(2, *model.clip_shape)).astype("float32")
    path = tmp_path / "last.keras"
    callbacks = [RaiseOnNaN(" (last.keras)"), keras.callbacks.ModelCheckpoint(path)]
    model.fit(clips, batch_size=2, epochs=1, callbacks=callbacks, verbose=0)
    good = [w.numpy() for w in keras.saving.load_model(path).weights]
    broken = np.full_like(clips, np.nan)
    with pytest.raises(NaNLossError, match="epoch 1, step 1.*last good checkpoint"):
        model.fit(broken, batch_size=2, epochs=1, callbacks=callbacks, verbose=0)
    kept = [w.numpy() for w in keras.saving.load_model(path).weights]
    for before, after in zip(good, kept):
        np.testing.assert_array_equal(before, after)
    assert all(np.isfinite(w).all() for w in kept)
