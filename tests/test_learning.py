"""The model really learns on the synthetic set (DESIGN.md section 2 dynamics)."""

from tests.synthetic_pretraining import BATCH, PLATEAU, PRED_STEPS


def test_loss_leaves_the_plateau_and_held_out_pretext_accuracy_rises(synthetic_pretraining):
    """Here only motion tells the clips of a batch apart: the loss starts on
    the plateau 2 ln(batch x pred_steps) (one grid cell) and leaves it after
    ~100-150 steps (48 videos per class). Measured: training loss 5.93 over
    steps 250-350; held-out loss 6.36 -> 6.02, top-1 0.076, top-5 0.33.
    Whether it escapes depends on the seed: seed 0 did in all 4 runs (24 or
    48 videos per class), seed 1 in 1 of 1, seed 2 in none of 2 (exactly on
    the plateau from step 100 on: every clip's prediction alike).
    """
    initial, final = synthetic_pretraining["initial"], synthetic_pretraining["final"]
    rows = BATCH * PRED_STEPS
    assert abs(initial["loss"] - PLATEAU) < 0.5, (initial, PLATEAU)
    assert synthetic_pretraining["late"] < PLATEAU - 0.3, (synthetic_pretraining, PLATEAU)
    assert final["loss"] < PLATEAU - 0.2, (final, PLATEAU)
    assert final["top1"] > 1.4 / rows, final  # chance is 1 / rows
    assert final["top5"] > 1.35 * 5 / rows, final
