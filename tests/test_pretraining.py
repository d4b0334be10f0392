import csv
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_memdpc.pretraining import PretrainConfig, pretrain, summary_text

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = dict(
    image_size=32, num_blocks=4, block_length=3, pred_steps=2, memory_size=16,
    batch_size=4, steps_per_epoch=2, synthetic_videos_per_class=5, verbose=0,
)
TINY_FLAGS = [
    "--image_size=32", "--num_blocks=4", "--block_length=3", "--pred_steps=2",
    "--memory_size=16", "--batch_size=4", "--steps_per_epoch=2",
    "--synthetic_videos_per_class=5",
]


def test_tiny_run_writes_checkpoints_history_and_summary(tmp_path):
    summary = pretrain(PretrainConfig(model_dir=str(tmp_path), epochs=2, **TINY))
    assert summary["epochs"] == 2 and summary["global_batch"] == 4
    assert np.isfinite(summary["final"]["loss"])
    assert 0 <= summary["final"]["val_top1"] <= 1
    assert summary["plateau_loss"] == pytest.approx(2 * np.log(4 * 2))
    for key in ("retrieval_learned", "retrieval_random_init"):
        recalls = [summary[key][f"R@{k}"] for k in (1, 5, 10, 20, 50)]
        assert recalls == sorted(recalls) and 0 <= recalls[0] and recalls[-1] == 1.0
    assert summary["chance"] == pytest.approx(1 / 8)
    text = summary_text(summary)
    assert f"learned {summary['retrieval_learned']['R@1']:.3f}" in text
    with open(tmp_path / "history.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1"]
    assert json.loads((tmp_path / "summary.json").read_text())["epochs"] == 2
    restored = keras.saving.load_model(tmp_path / "last.keras")
    assert restored.get_config()["memory_size"] == 16
    assert (tmp_path / "best.keras").exists() and (tmp_path / "logs").is_dir()
    assert not (tmp_path / "backup").exists()


def test_the_summary_says_when_the_loss_stayed_on_the_plateau():
    summary = {"train_seconds": 60.0, "clips_per_second": 8.0, "plateau_loss": 6.356,
               "model_dir": "runs/pretrain", "final": {"loss": 6.35}}
    assert "still on that plateau" in summary_text(summary)
    summary["final"]["loss"] = 5.9
    assert "plateau:" not in summary_text(summary)
    assert "training loss 5.900 (plateau of clips not told apart 6.356)" in summary_text(summary)


def test_a_finished_run_is_not_overwritten_by_accident(tmp_path):
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(FileExistsError, match="--overwrite"):
        pretrain(PretrainConfig(model_dir=str(tmp_path), epochs=1, **TINY))


def test_a_run_killed_after_its_last_epoch_resumes_at_its_end(tmp_path, monkeypatch):
    from keras_memdpc import pretraining

    def killed(*args, **kwargs):
        raise RuntimeError("killed before the summary")

    config = PretrainConfig(model_dir=str(tmp_path), epochs=2, **TINY)
    with monkeypatch.context() as patch:
        patch.setattr(pretraining, "retrieval_comparison", killed)
        with pytest.raises(RuntimeError, match="killed"):
            pretrain(config)
    assert (tmp_path / "backup").is_dir() and not (tmp_path / "summary.json").exists()
    summary = pretrain(config)
    with open(tmp_path / "history.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1"]  # no epoch again
    assert summary["clips_per_second"] == 0 and summary["final"]["epoch"] == 1
    assert (tmp_path / "summary.json").exists() and not (tmp_path / "backup").exists()


@pytest.mark.parametrize(
    "change, message",
    [({"strategy": "gpu"}, "--strategy"), ({"mixed_precision": "fp8"}, "--mixed_precision"),
     ({"data": "/nowhere"}, "--data"), ({"batch_size": 0}, "--batch_size")],
)
def test_bad_flags_are_clear_errors(tmp_path, change, message):
    config = PretrainConfig(model_dir=str(tmp_path), **{**TINY, **change})
    with pytest.raises(ValueError, match=message):
        pretrain(config)


def run_script(model_dir, epochs, extra=()):
    command = [
        sys.executable, str(ROOT / "train" / "pretrain.py"), f"--model_dir={model_dir}",
        f"--epochs={epochs}", *TINY_FLAGS, *extra,
    ]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), cwd=ROOT,
    )


def kill_after_first_epoch(model_dir, processes):
    """SIGKILLs `processes` once model_dir's backup records a finished epoch."""
    metadata = pathlib.Path(model_dir) / "backup" / "training_metadata.json"
    try:
        deadline = time.time() + 240
        while time.time() < deadline and all(p.poll() is None for p in processes):
            if metadata.exists() and json.loads(metadata.read_text() or "{}").get("epoch", 0) >= 1:
                break
            time.sleep(0.1)
        assert all(p.poll() is None for p in processes), "a run ended before the kill"
    finally:
        for process in processes:
            process.send_signal(signal.SIGKILL)
            process.wait()


def test_a_killed_run_resumes_where_it_stopped(tmp_path):
    kill_after_first_epoch(tmp_path, [run_script(tmp_path, epochs=4)])
    second = run_script(tmp_path, epochs=4)
    output, _ = second.communicate(timeout=300)
    assert second.returncode == 0, output[-3000:]
    assert "Epoch 1/4" not in output, output[-3000:]
    assert "Epoch 4/4" in output
    assert "retrieval R@1 (= 1-NN class accuracy): learned" in output
    with open(tmp_path / "history.csv") as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert epochs[-1] == 3 and set(epochs) == {0, 1, 2, 3}


def launch_two_workers(model_dir, epochs):
    from tests.test_distributed import _free_ports

    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        command = [
            sys.executable, str(ROOT / "train" / "pretrain.py"), "--strategy=multi_worker",
            f"--model_dir={model_dir}", f"--epochs={epochs}", *TINY_FLAGS,
        ]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_CONFIG=tf_config)
        workers.append(subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=env, cwd=ROOT,
        ))
    return workers


def test_multi_worker_pretraining_with_two_processes_killed_and_resumed(tmp_path):
    run = tmp_path / "run"
    kill_after_first_epoch(run, launch_two_workers(run, epochs=4))
    workers = launch_two_workers(run, epochs=4)
    try:
        outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-3000:]
        assert "Epoch 1/4" not in output, output[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["replicas"] == 2 and summary["global_batch"] == 8
    assert np.isfinite(summary["final"]["loss"]) and "val_loss" in summary["final"]
    with open(run / "history.csv") as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert epochs[-1] == 3 and set(epochs) == {0, 1, 2, 3}
    # The other worker resumed from the chief's backup: its copy of the weights
    # (in its own folder) is the chief's.
    worker_dir = re.search(r"own files \(not the chief's\) go to (\S+)", outputs[1]).group(1)
    chief_weights = keras.saving.load_model(run / "last.keras").get_weights()
    worker_weights = keras.saving.load_model(f"{worker_dir}/last.keras").get_weights()
    for chief_weight, worker_weight in zip(chief_weights, worker_weights, strict=True):
        np.testing.assert_allclose(worker_weight, chief_weight, rtol=0, atol=1e-6)
    assert not (run / "backup").exists()


@pytest.mark.slow
def test_the_readme_budget_makes_retrieval_beat_random_initialisation(tmp_path):
    """The demo's run (README): 40 epochs of 16 steps at 32 px, ~11 min on 2 cores.

    Every held-out video (8 per class) retrieves its nearest training video;
    R@1 is the 1-nearest-neighbour motion-class accuracy of `embed`. Runs
    vary (TF CPU training is not bit-deterministic): measured R@1 0.453 and
    0.328 learned against 0.219 at random initialisation; R@5 0.797 and
    0.891 against 0.641.
    """
    summary = pretrain(PretrainConfig(model_dir=str(tmp_path), verbose=0))
    learned, random_init = summary["retrieval_learned"], summary["retrieval_random_init"]
    assert learned["queries"] == 64
    assert learned["R@1"] > random_init["R@1"], (learned, random_init)
    assert learned["R@5"] > random_init["R@5"] + 0.1, (learned, random_init)
    assert learned["R@1"] > 2 * summary["chance"], (learned, summary["chance"])
