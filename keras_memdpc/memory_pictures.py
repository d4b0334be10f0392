"""Pictures of what the memory learned (paper appendix E, figures 8 and 9).

For a MemDPC and a prepared subset (the training videos), a video's
addressing vector is its memory addressing probability p ("addressing",
[batch, D, pred_steps, h, w, k] from the model's call) averaged over
directions, prediction steps, positions and the video's sliding windows
(centre crops): [k], summing to 1. From these:
- the videos nearest to a memory slot: those that address it the most
  (slots.png: per slot, the middle frames of its nearest videos);
- the slot norms ||M_i|| sorted, the chosen slots in orange (slot_norms.png);
- a t-SNE of the addressing vectors coloured by class (tsne.png, one panel
  per checkpoint, as figure 9 compares training stages).

Needs matplotlib and scikit-learn (pip install "keras_memdpc[plots]").
"""

import json
import os

import numpy as np
from absl import logging

from keras_memdpc.retrieval import (
    NEUTRAL,
    QUERY_GAP,
    class_name,
    frame_tile,
    middle_frames,
    text_tile,
    tile_grid,
    video_means,
    write_png,
)
from keras_memdpc.video_tfrecord import read_dataset_json, shard_pattern

try:
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from sklearn.manifold import TSNE
except ImportError as error:
    raise ImportError(
        "keras_memdpc.memory_pictures needs matplotlib and scikit-learn: "
        "pip install 'keras_memdpc[plots]'"
    ) from error

NEAREST_VIDEOS = 3
DEFAULT_SLOTS = 5
TSNE_CLASSES = 10
EXACT_TSNE_VIDEOS = 500
DPI = 100
NORMS_FIGURE = (6.0, 3.0)  # inches
TSNE_PANEL = 4.0  # inches, square
TSNE_LEGEND = 2.0  # inches to the right of the panels


def checkpoint_names(checkpoints):
    """Folder names for checkpoints: file stems, made unique.

    runs/a/best.keras, runs/b/best.keras -> a_best, b_best; a name still
    repeated gets its position as a prefix.
    """
    stems = [os.path.splitext(os.path.basename(path))[0] for path in checkpoints]
    if len(set(stems)) == len(stems):
        return stems
    names = [f"{os.path.basename(os.path.dirname(os.path.abspath(path)))}_{stem}"
             for path, stem in zip(checkpoints, stems)]
    if len(set(names)) == len(names):
        return names
    return [f"{index}_{name}" for index, name in enumerate(names)]


def check_memory(model):
    """Raises ValueError unless the MemDPC `model` has a memory bank."""
    if model.memory is None:
        raise ValueError(
            f"{model.name} has no memory bank (predictor={model.predictor!r}): memory "
            "pictures need a MemDPC with predictor='memory'"
        )


def check_slots(slots, size):
    """Raises ValueError naming the slots outside [0, size)."""
    outside = [int(slot) for slot in slots if not 0 <= slot < size]
    if outside:
        raise ValueError(f"slots {outside} are outside the memory of {size} slots")


def window_addressing(model, clips):
    """Addressing p of each clip averaged over directions, steps and positions.

    clips [batch, num_blocks, block_length, size, size, 3] -> [batch, k].
    """
    addressing = np.asarray(model(clips, training=False)["addressing"], np.float64)
    return addressing.mean(axis=(1, 2, 3, 4))


def video_addressing(model, file_pattern, batch_size, stride=3, modality="rgb"):
    """Per-video addressing vectors: `window_addressing` averaged over windows.

    Returns (addressing float32 [videos, k], labels int64 [videos], paths
    [videos]) in the shards' read order (see retrieval.video_means).
    """
    check_memory(model)
    return video_means(
        lambda clips: window_addressing(model, clips), file_pattern, batch_size,
        model.image_size, model.num_blocks, model.block_length, stride, modality,
    )


def slot_norms(model):
    """||M_i|| of every memory slot: float32 [k]."""
    check_memory(model)
    return np.linalg.norm(np.asarray(model.memory.memory, np.float32), axis=1)


def most_addressed_slots(addressing, count=DEFAULT_SLOTS):
    """The `count` slots with the highest mean addressing over videos, highest first."""
    return np.argsort(-np.asarray(addressing).mean(axis=0), kind="stable")[:count]


def nearest_videos(addressing, slots, count=NEAREST_VIDEOS):
    """For each slot, the videos that address it most, highest first.

    Args:
        addressing: [videos, k]; slots: slot indices.
        count: videos per slot (all of them when fewer).
    Returns int64 [len(slots), min(count, videos)]; equal values keep video order.
    Raises ValueError naming a slot outside [0, k).
    """
    addressing = np.asarray(addressing)
    slots = np.asarray(slots, np.int64)
    check_slots(slots, addressing.shape[1])
    return np.argsort(-addressing[:, slots].T, axis=1, kind="stable")[:, :count]


def tsne_points(addressing, seed=0):
    """2-D t-SNE of addressing vectors [n, k] -> [n, 2] (perplexity <= 30).

    The perplexity is min(30, (n - 1) / 3) so that small sets work too; up
    to EXACT_TSNE_VIDEOS vectors the exact gradient is used (faster there
    than Barnes-Hut). Raises ValueError for fewer than 2 vectors.
    """
    addressing = np.asarray(addressing, np.float64)
    if len(addressing) < 2:
        raise ValueError(f"t-SNE needs at least 2 videos, got {len(addressing)}")
    perplexity = min(30.0, (len(addressing) - 1) / 3)
    method = "exact" if len(addressing) <= EXACT_TSNE_VIDEOS else "barnes_hut"
    tsne = TSNE(2, perplexity=perplexity, init="pca", random_state=seed, method=method)
    return tsne.fit_transform(addressing)


def plot_slot_norms(norms, slots, path):
    """Sorted slot norms, the given slots in orange; a PNG of 600 x 300 pixels."""
    norms = np.asarray(norms)
    order = np.argsort(-norms, kind="stable")
    figure = Figure(figsize=NORMS_FIGURE, dpi=DPI)
    axes = figure.add_subplot()
    axes.bar(np.arange(len(norms)), norms[order], width=1.0, color="tab:blue")
    rank = {int(slot): position for position, slot in enumerate(order)}
    for slot in slots:
        axes.bar(rank[int(slot)], norms[slot], width=1.0, color="tab:orange")
        axes.annotate(str(int(slot)), (rank[int(slot)], norms[slot]), ha="center",
                      va="bottom", fontsize=7, color="tab:orange")
    axes.set_xlabel("memory slots, sorted by norm")
    axes.set_ylabel("||M_i||")
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)


def plot_tsne(panels, class_names, path):
    """t-SNE panels side by side, points coloured by class; a PNG.

    Args:
        panels: list of (title, points [n, 2], labels [n]).
        class_names: names of the class indices (the legend).
        path: where the PNG goes: (TSNE_PANEL * panels + TSNE_LEGEND) * DPI
            by TSNE_PANEL * DPI pixels.
    """
    classes = sorted({int(label) for _, _, labels in panels for label in labels})
    colours = dict(zip(classes, _class_colours(len(classes))))
    figure = Figure(figsize=(TSNE_PANEL * len(panels) + TSNE_LEGEND, TSNE_PANEL), dpi=DPI)
    width = TSNE_PANEL / (TSNE_PANEL * len(panels) + TSNE_LEGEND)
    for index, (title, points, labels) in enumerate(panels):
        axes = figure.add_axes([index * width + 0.02 * width, 0.04, 0.96 * width, 0.86])
        for label in classes:
            chosen = np.asarray(labels) == label
            axes.scatter(points[chosen, 0], points[chosen, 1], s=10,
                         color=colours[label], label=class_name(class_names, label))
        axes.set_title(title, fontsize=8)
        axes.set_xticks([])
        axes.set_yticks([])
    handles, names = figure.axes[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="center right", fontsize=7, frameon=False)
    figure.savefig(path, dpi=DPI)


def _class_colours(count):
    palette = colormaps["tab10" if count <= 10 else "tab20"]
    return [palette(index % palette.N) for index in range(count)]


def slots_grid(slots, norms, addressing, nearest, frames, labels, class_names):
    """Per slot (a row): its index, norm and mean p, then its nearest videos.

    Args:
        slots [s]; norms [k]; addressing [videos, k]; nearest [s, n] video
        indices; frames {video index: uint8 RGB frame}; labels [videos];
        class_names.
    Returns uint8 RGB [PAD + s * (TILE + PAD), PAD + (1 + n) * (TILE + PAD)
    + QUERY_GAP, 3] (retrieval's tile layout).
    """
    rows = []
    for slot, videos in zip(slots, nearest):
        row = [text_tile([f"slot {slot}", f"|M| {norms[slot]:.2f}",
                          f"mean p {addressing[:, slot].mean():.3g}"])]
        for video in videos:
            lines = [class_name(class_names, labels[video]),
                     f"p {addressing[video, slot]:.3g}"]
            row.append(frame_tile(frames[video], lines, NEUTRAL))
        rows.append(row)
    return tile_grid(rows, QUERY_GAP)


def _tsne_subset(labels, max_classes, seed):
    """Indices of the videos of at most `max_classes` classes drawn with `seed`."""
    classes = np.unique(labels)
    if len(classes) > max_classes:
        classes = np.random.default_rng(seed).choice(classes, max_classes, replace=False)
    return np.flatnonzero(np.isin(labels, classes))


def memory_pictures(models, data_dir, output_dir, slots=None, subset="train",
                    batch_size=8, count=NEAREST_VIDEOS, tsne_classes=TSNE_CLASSES,
                    modality="rgb", seed=0):
    """Writes the memory pictures of one or several models; returns a summary.

    Args:
        models: list of (name, MemDPC); each gets OUTPUT_DIR/<name>/ with
            slot_norms.png, slots.png and memory.json (per slot: norm, mean
            p, nearest videos with path, label and p).
        data_dir: a prepared data set; `subset` (the training videos) is used.
        output_dir: also receives tsne.png, one panel per model, of the videos
            of at most `tsne_classes` classes (drawn with `seed`).
        slots: memory slots to show; default each model's DEFAULT_SLOTS most
            addressed slots. Slots and models are checked before any work.
        count: nearest videos per slot.
        modality: shards the models read; frames shown are always RGB.
    Returns {name: memory.json's dict}.
    """
    info = read_dataset_json(data_dir)
    if subset not in info["subsets"]:
        raise ValueError(f"{data_dir}: no subset {subset!r} (it has {sorted(info['subsets'])})")
    for _, model in models:
        check_memory(model)
        check_slots([] if slots is None else slots, model.memory_size)
    pattern = shard_pattern(data_dir, modality, subset)
    os.makedirs(output_dir, exist_ok=True)
    summary, panels = {}, []
    for name, model in models:
        addressing, labels, paths = video_addressing(model, pattern, batch_size,
                                                     modality=modality)
        norms = slot_norms(model)
        chosen = most_addressed_slots(addressing) if slots is None else np.asarray(slots)
        nearest = nearest_videos(addressing, chosen, count)
        frames = middle_frames(shard_pattern(data_dir, "rgb", subset), nearest.ravel())
        folder = os.path.join(output_dir, name)
        os.makedirs(folder, exist_ok=True)
        plot_slot_norms(norms, chosen, os.path.join(folder, "slot_norms.png"))
        write_png(os.path.join(folder, "slots.png"), slots_grid(
            chosen, norms, addressing, nearest, frames, labels, info["classes"]))
        summary[name] = {
            "memory_size": len(norms),
            "videos": len(paths),
            "slots": {
                str(int(slot)): {
                    "norm": float(norms[slot]),
                    "mean_p": float(addressing[:, slot].mean()),
                    "nearest": [
                        {"path": paths[video], "label": int(labels[video]),
                         "p": float(addressing[video, slot])}
                        for video in videos
                    ],
                }
                for slot, videos in zip(chosen, nearest)
            },
        }
        with open(os.path.join(folder, "memory.json"), "w") as f:
            json.dump(summary[name], f, indent=2)
        shown = _tsne_subset(labels, tsne_classes, seed)
        panels.append((name, tsne_points(addressing[shown], seed), labels[shown]))
        logging.info("memory pictures of %s in %s", name, folder)
    plot_tsne(panels, info["classes"], os.path.join(output_dir, "tsne.png"))
    return summary
