"""benchmarks/step_profile.py run as a user runs it, on a tiny step."""

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_step_profile_accounts_for_the_step_by_kind():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "step_profile.py"),
         "--image_size=32", "--batch_size=1", "--warmup_steps=1", "--steps=2"],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow"),
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    kinds = report["seconds_by_kind"]
    # Every conv of the encoder runs forward, and its filter gradient; all but
    # the stem (whose input is data) also their input gradient.
    for kind in ("conv_forward", "conv_input_gradient", "conv_filter_gradient",
                 "batch_norm"):
        assert kinds[kind] > 0, kind
    assert abs(sum(kinds.values()) - report["op_seconds_per_step"]) < 1e-6
    # One op at a time: the ops' times fit inside the step's wall time.
    assert 0 < report["op_seconds_per_step"] <= report["seconds_per_step"] * 1.05
    conv = sum(s for k, s in kinds.items() if k.startswith("conv_"))
    assert abs(report["convolution_share"] - conv / report["op_seconds_per_step"]) < 1e-9
    assert report["top_op_types"][0][1] >= report["top_op_types"][-1][1]
    assert report["conv_gflops_256_channels"] > 0
    assert report["conv_gflops_first_2d_stage"] > 0
