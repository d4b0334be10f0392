"""Two-stream late fusion: average the per-video probabilities of several streams.

The paper's two-stream results average the predictions of an RGB network and
an optical-flow network. Each stream is the predictions.npz that
`classification.evaluate_classifier` writes: "probabilities" [videos,
classes], "labels" [videos], "paths" [videos], "classes" [classes],
"modality". Streams are matched by video path, so their order may differ; the
videos, labels and classes must be the same in every stream.
"""

import os

import numpy as np

from keras_memdpc.classification import top_k_correct

TOP_K = 5


def load_predictions(path):
    """One stream's predictions.npz as a dict of arrays (+ "file")."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"predictions file {path} not found")
    with np.load(path, allow_pickle=False) as data:
        stream = {key: data[key] for key in data.files}
    missing = {"probabilities", "labels", "paths", "classes"} - set(stream)
    if missing:
        raise ValueError(f"{path}: not a predictions file (no {', '.join(sorted(missing))})")
    stream["file"] = path
    return stream


def _name(stream, index):
    return stream.get("file", f"stream {index}")


def _listed(items, limit=10):
    items = sorted(items)
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def fuse(streams):
    """Averages the probabilities of the same videos over streams.

    Args:
        streams: dicts with "probabilities" [videos, classes], "labels"
            [videos], "paths" [videos], "classes" [classes] (and optionally
            "file", which errors name).

    Returns:
        dict: "paths" sorted, and in that order "probabilities" (the mean
        over streams) and "labels".

    Raises:
        ValueError naming the streams and what differs: video lists, a
        video's label, the classes, or duplicated videos.
    """
    if len(streams) < 2:
        raise ValueError(f"late fusion needs at least two streams, got {len(streams)}")
    first = streams[0]
    aligned = []
    for index, stream in enumerate(streams):
        paths = [str(path) for path in stream["paths"]]
        if len(set(paths)) != len(paths):
            raise ValueError(f"{_name(stream, index)}: a video appears more than once")
        if list(stream["classes"]) != list(first["classes"]):
            raise ValueError(
                f"{_name(stream, index)} and {_name(first, 0)} have different classes"
            )
        aligned.append(dict(zip(paths, zip(stream["probabilities"], stream["labels"]))))
    reference = aligned[0]
    for index, videos in enumerate(aligned[1:], start=1):
        only_first = reference.keys() - videos.keys()
        only_this = videos.keys() - reference.keys()
        if only_first or only_this:
            problems = []
            if only_first:
                problems.append(f"only in {_name(first, 0)}: {_listed(only_first)}")
            if only_this:
                problems.append(
                    f"only in {_name(streams[index], index)}: {_listed(only_this)}"
                )
            raise ValueError("the streams hold different videos; " + "; ".join(problems))
        relabelled = [p for p in reference if int(reference[p][1]) != int(videos[p][1])]
        if relabelled:
            raise ValueError(
                f"{_name(first, 0)} and {_name(streams[index], index)} label these "
                f"videos differently: {_listed(relabelled)}"
            )
    paths = sorted(reference)
    probabilities = np.mean(
        [[videos[p][0] for p in paths] for videos in aligned], axis=0, dtype=np.float64
    )
    return {
        "paths": paths,
        "probabilities": probabilities,
        "labels": np.array([int(reference[p][1]) for p in paths]),
    }


def accuracies(probabilities, labels):
    """{"top1", "top5"} (top-5 is top-min(5, classes)) of per-video probabilities."""
    k = min(TOP_K, np.shape(probabilities)[1])
    return {
        "top1": float(np.mean(top_k_correct(probabilities, labels, 1))),
        "top5": float(np.mean(top_k_correct(probabilities, labels, k))),
    }


def fusion_report(paths):
    """Each stream's and the fused top-1 / top-5 of predictions.npz files.

    Returns:
        dict: "streams" [{"file", "modality", "top1", "top5"}], "fused"
        {"top1", "top5"}, "num_videos".
    """
    streams = [load_predictions(path) for path in paths]
    fused = fuse(streams)
    return {
        "streams": [
            {
                "file": stream["file"],
                "modality": str(stream.get("modality", "")),
                **accuracies(stream["probabilities"], stream["labels"]),
            }
            for stream in streams
        ],
        "fused": accuracies(fused["probabilities"], fused["labels"]),
        "num_videos": len(fused["paths"]),
    }
