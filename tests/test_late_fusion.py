import numpy as np
import pytest

from keras_memdpc.classification import save_predictions
from keras_memdpc.late_fusion import fuse, fusion_report, load_predictions

CLASSES = ["a", "b", "c"]


def stream(paths, probabilities, labels, modality="rgb"):
    return {
        "paths": np.array(paths), "probabilities": np.array(probabilities, float),
        "labels": np.array(labels), "classes": np.array(CLASSES), "modality": modality,
    }


RGB = stream(["v1", "v2", "v3"], [[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.1, 0.4]], [1, 1, 2])
# The same videos in another order.
FLOW = stream(
    ["v3", "v1", "v2"], [[0.1, 0.1, 0.8], [0.1, 0.9, 0.0], [0.3, 0.3, 0.4]], [2, 1, 1], "flow"
)


def test_fusion_averages_the_probabilities_of_each_video():
    fused = fuse([RGB, FLOW])
    assert fused["paths"] == ["v1", "v2", "v3"]
    np.testing.assert_allclose(
        fused["probabilities"], [[0.35, 0.6, 0.05], [0.25, 0.5, 0.25], [0.3, 0.1, 0.6]]
    )
    np.testing.assert_array_equal(fused["labels"], [1, 1, 2])


def test_report_gives_each_stream_and_the_fused_accuracy(tmp_path):
    files = []
    for name, item in (("rgb", RGB), ("flow", FLOW)):
        predictions = {key: item[key] for key in ("paths", "probabilities", "labels")}
        save_predictions(tmp_path / f"{name}.npz", predictions, CLASSES, item["modality"])
        files.append(str(tmp_path / f"{name}.npz"))
    np.testing.assert_array_equal(load_predictions(files[1])["paths"], ["v3", "v1", "v2"])
    report = fusion_report(files)
    # RGB is right on v2 only, flow on v1 and v3, the average on all three;
    # with three classes, top-5 is top-3: always right.
    assert [s["top1"] for s in report["streams"]] == pytest.approx([1 / 3, 2 / 3])
    assert [s["modality"] for s in report["streams"]] == ["rgb", "flow"]
    assert report["fused"] == {"top1": 1.0, "top5": 1.0} and report["num_videos"] == 3


def test_streams_with_different_videos_are_refused_naming_them():
    other = stream(["v1", "v2", "v4"], FLOW["probabilities"], [1, 1, 2])
    other["file"] = "flow.npz"
    with pytest.raises(ValueError, match=r"only in stream 0: v3; only in flow.npz: v4"):
        fuse([RGB, other])


@pytest.mark.parametrize(
    "change, message",
    [({"labels": np.array([2, 0, 2])}, "label these videos differently: v1, v2"),
     ({"classes": np.array(["a", "b", "d"])}, "different classes"),
     ({"paths": np.array(["v1", "v1", "v2"])}, "more than once")],
)
def test_inconsistent_streams_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        fuse([RGB, {**FLOW, **change}])
    with pytest.raises(ValueError, match="at least two"):
        fuse([RGB])
