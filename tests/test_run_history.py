"""A run's history on disk: finished-run check and the resumable lr drop."""

import keras
import numpy as np
import pytest

from keras_memdpc.run_history import (
    HISTORY_CSV,
    ResumableReduceLROnPlateau,
    best_logged,
    claim_model_dir,
    logged_rows,
)


def write_history(path, val_losses):
    lines = ["epoch,loss,val_loss"] + [
        f"{epoch},{loss + 1},{loss}" for epoch, loss in enumerate(val_losses)
    ]
    path.write_text("\n".join(lines) + "\n")


def compiled_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    return model


def learning_rate(model):
    return float(np.asarray(model.optimizer.learning_rate))


def test_logged_rows_and_best_value(tmp_path):
    write_history(tmp_path / HISTORY_CSV, [1.0, 0.9, float("nan"), 0.95])
    rows = logged_rows(tmp_path / HISTORY_CSV)
    assert [row["val_loss"] for row in rows][:2] == [1.0, 0.9] and len(rows) == 4
    assert best_logged(tmp_path / HISTORY_CSV, "val_loss") == 0.9
    assert best_logged(tmp_path / "absent.csv", "val_loss") is None


def test_a_resumed_run_drops_the_lr_when_the_uninterrupted_run_would(tmp_path):
    """Patience 3: the killed run logged the best epoch and two worse ones,
    so one more worse epoch after the resume drops the learning rate."""
    history = tmp_path / HISTORY_CSV
    write_history(history, [1.0, 0.9, 0.95, 0.96])
    drops = {}
    for name, callback in [
        ("resumed", ResumableReduceLROnPlateau(history, monitor="val_loss", patience=3,
                                               factor=0.1, min_lr=1e-4)),
        ("forgetful", keras.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=3,
                                                        factor=0.1, min_lr=1e-4)),
    ]:
        model = compiled_model()
        callback.set_model(model)
        callback.on_train_begin()
        callback.on_epoch_end(4, {"val_loss": 0.97})
        drops[name] = learning_rate(model)
    assert drops["resumed"] == pytest.approx(1e-4)
    assert drops["forgetful"] == pytest.approx(1e-3)


def test_replaying_a_logged_drop_keeps_the_lower_rate(tmp_path):
    history = tmp_path / HISTORY_CSV
    write_history(history, [1.0, 1.1, 1.2, 0.5])  # patience 2: dropped after epoch 2
    model = compiled_model()
    callback = ResumableReduceLROnPlateau(history, monitor="val_loss", patience=2,
                                          factor=0.1, min_lr=1e-4)
    callback.set_model(model)
    callback.on_train_begin()
    assert learning_rate(model) == pytest.approx(1e-4)
    assert callback.best == 0.5 and callback.wait == 0


def test_a_finished_run_is_kept_unless_overwritten_and_then_its_history_goes(tmp_path):
    (tmp_path / "summary.json").write_text("{}")
    write_history(tmp_path / HISTORY_CSV, [0.1])
    (tmp_path / "best.keras").write_text("old")
    (tmp_path / "backup").mkdir()  # killed after its summary, before removing its backup
    with pytest.raises(FileExistsError, match="--overwrite.*--mode=test"):
        claim_model_dir(tmp_path, "summary.json", False, advice="--mode=test to test it")
    assert (tmp_path / HISTORY_CSV).exists()
    claim_model_dir(tmp_path, "summary.json", True)
    assert not (tmp_path / "summary.json").exists() and not (tmp_path / HISTORY_CSV).exists()
    assert not (tmp_path / "backup").exists()  # the new run must not resume the old one
    assert (tmp_path / "best.keras").read_text() == "old"  # replaced by the new run's best
    claim_model_dir(tmp_path, "summary.json", False)  # nothing finished there now
