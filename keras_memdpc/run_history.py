"""A training run's history in its model_dir, and resuming from it.

pretrain.py and classify.py log every finished epoch to MODEL_DIR/history.csv
(keras.callbacks.CSVLogger). A killed run resumes from its BackupAndRestore
checkpoint, which holds the weights, the optimizer and the epoch, but not the
callbacks' own state: the best value so far and the lr drop's patience
counter are rebuilt from history.csv here, so a resumed run saves best.keras
and drops the learning rate exactly when the uninterrupted run would have.
"""

import contextlib
import csv
import math
import os
import shutil
import tempfile

import keras

HISTORY_CSV = "history.csv"
BACKUP_DIR = "backup"


def logged_rows(history_csv):
    """The epochs a CSVLogger file records, as dicts of floats."""
    if not os.path.exists(history_csv):
        return []
    with open(history_csv) as f:
        return [
            {key: float(value) for key, value in row.items() if value}
            for row in csv.DictReader(f)
        ]


def best_logged(history_csv, monitor):
    """The lowest finite `monitor` value in a CSVLogger file, or None."""
    values = [row[monitor] for row in logged_rows(history_csv) if monitor in row]
    finite = [v for v in values if math.isfinite(v)]
    return min(finite) if finite else None


def claim_model_dir(model_dir, summary_name, overwrite, advice="choose another --model_dir"):
    """Refuses a model_dir that holds a finished run, unless `overwrite`.

    A run is finished when its summary file exists. With `overwrite`, that
    summary, history.csv and any backup left are removed, so the new run
    neither resumes the old one nor compares its best checkpoint and lr drop
    against the old run's epochs (its checkpoints are then replaced as the
    new run saves its own).
    """
    summary_path = os.path.join(model_dir, summary_name)
    if not os.path.exists(summary_path):
        return
    if not overwrite:
        raise FileExistsError(
            f"{model_dir} holds a finished run ({summary_path}); pass --overwrite to "
            f"train again there, or {advice}"
        )
    for name in (summary_name, HISTORY_CSV):
        with contextlib.suppress(FileNotFoundError):  # workers may race to remove
            os.remove(os.path.join(model_dir, name))
    remove_backup(model_dir)


def backup_and_restore(output_dir):
    """keras.callbacks.BackupAndRestore under output_dir/backup, kept after fit.

    Kept when fit ends, so that a run killed after its last epoch but before
    its summary was written resumes at its end instead of training again;
    `remove_backup` deletes it once the summary is written. Put it last
    among the callbacks: an epoch then counts as done only once the others
    (checkpoints, history.csv) have recorded it.
    """
    return keras.callbacks.BackupAndRestore(
        os.path.join(output_dir, BACKUP_DIR), double_checkpoint=True,
        delete_checkpoint=False,
    )


def remove_backup(output_dir):
    """Deletes output_dir/backup (the run is finished), if there is one."""
    shutil.rmtree(os.path.join(output_dir, BACKUP_DIR), ignore_errors=True)


class ResumableReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau that first replays the epochs logged in `history_csv`.

    On a fresh run the file is absent and this is ReduceLROnPlateau. On a
    resumed run, its best value, patience counter and cooldown continue from
    the logged epochs (and the learning rate takes the logged drops, which
    BackupAndRestore then restores to the same value).

    Args:
        history_csv: the CSVLogger file of this run.
        **kwargs: those of keras.callbacks.ReduceLROnPlateau.
    """

    def __init__(self, history_csv, **kwargs):
        super().__init__(**kwargs)
        self.history_csv = history_csv

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        for epoch, row in enumerate(logged_rows(self.history_csv)):
            if self.monitor in row:
                self.on_epoch_end(epoch, {self.monitor: row[self.monitor]})


def worker_output_dir(model_dir):
    """A new folder for a non-chief worker's files, holding the chief's resume state.

    Only the chief writes to model_dir. Every worker of a multi-worker job
    must resume at the chief's epoch with its weights and optimizer, or the
    workers step out of line (and their weights differ): so a worker's folder
    starts with copies of the chief's backup and history.csv (which the lr
    drop replays). Returns the folder's path.
    """
    output_dir = tempfile.mkdtemp(prefix="worker_")
    backup = os.path.join(model_dir, BACKUP_DIR)
    if os.path.isdir(backup):
        shutil.copytree(backup, os.path.join(output_dir, BACKUP_DIR))
    history_csv = os.path.join(model_dir, HISTORY_CSV)
    if os.path.exists(history_csv):
        shutil.copy(history_csv, output_dir)
    return output_dir
