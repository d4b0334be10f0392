"""Built-in synthetic video data set whose classes are defined by motion alone.

Every video is a random-dot kinematogram: about 30 dots of random colours
and sizes on a grey background, all moving with one of eight global motion
fields: translation left/right/up/down, rotation clockwise/counterclockwise
about a point near the centre, zoom in/out (expansion from or contraction to
that point). Each dot lives a short random time (8-16 frames) and then
reappears at a random place with a new colour and size, so single frames
are statistically alike across classes and across videos: neither a frame
nor a video's overall appearance tells the class or even the video apart;
only the motion over a few frames does. The speed and the centre of the
motion are random per video.

This is what makes the set a test of MemDPC: the pretext task tells clips of
a batch apart, and here it can only do so by their motion, so a network that
learns the task encodes motion in its context. (An earlier version drew a
random textured scene per video; the model then told videos apart by
texture, and its pooled context grouped videos by look, not by motion.)

The built-in runs use DEFAULT_SIZE = 32 px frames: R18's feature grid is then
1 x 1, so the pretext has no positions to tell apart and learns motion from
its first steps (~0.75 s a step on 2 cores). At 48 and 64 px (a 2 x 2 grid)
2-core runs sat on the position-only plateau for their first 300 steps.

Optionally (Oops style) a video fails at `change_frame`: from then on the
dots scatter, each in its own random direction at the video's speed, like
a scene that falls apart; its label stays the class of the motion before.
The failure is thus visible in the motion of every later clip, as falls and
crashes are in the Oops videos.

Videos are uint8 RGB arrays [frames, height, width, 3].  `write_dataset`
stores them as XVID .avi files with UCF101 split lists and Oops transition
annotations.
"""

import json
import math
import os

import cv2
import numpy as np

CLASS_NAMES = (
    "translate_left",
    "translate_right",
    "translate_up",
    "translate_down",
    "rotate_clockwise",
    "rotate_counterclockwise",
    "zoom_in",
    "zoom_out",
)

DEFAULT_SIZE = 32  # frame size of the built-in runs, see below
DEFAULT_VIDEOS_PER_CLASS = 24  # 16 train and 8 test videos per class
_NOMINAL_SIZE = 64.0  # geometry is defined for a 64 px frame and scaled
_NUM_DOTS = 30
_DOT_RADIUS = (3.0, 7.0)  # nominal pixels
_DOT_LIFETIME = (8, 17)  # frames, upper bound excluded
_SPEED = (2.0, 4.0)  # nominal pixels per frame (at 20 px from the centre
# for rotation and zoom): 2-4 frame widths per 40-frame clip at stride 3
_LEVER = 20.0  # nominal pixels: angular and zoom rates are speed / lever
_CENTRE_OFFSET = 8.0  # nominal pixels, centre of rotation and zoom
_MARGIN = 8.0  # dots live in the frame plus this margin, so they enter smoothly
_BACKGROUND = 128.0
_SUBPIXEL_BITS = 4  # cv2 drawing precision: 1/16 pixel
_CHANGE_RANGE = (0.2, 0.8)  # relative position of the abrupt change
_GROUP_SIZE = 4
_TEST_GROUP_FRACTION = 0.25


def camel_case(class_name):
    """Return the UCF101 style CamelCase name, e.g. 'TranslateLeft'."""
    return "".join(word.capitalize() for word in class_name.split("_"))


def dot_velocities(motion_class, positions, speed, centre):
    """Velocities [dots, 2] (nominal pixels per frame) of dots at `positions`.

    Translation moves every dot by `speed`; rotation and zoom move a dot at
    distance r from `centre` by speed * r / 20 px, tangentially (image y
    points down, so clockwise is +angle) or radially (outwards for zoom in).
    """
    name = CLASS_NAMES[motion_class]
    if name.startswith("translate"):
        direction = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0),
                     "down": (0.0, 1.0)}[name.split("_")[1]]
        return np.broadcast_to(speed * np.array(direction), positions.shape)
    offsets = positions - centre
    rate = speed / _LEVER
    if name == "rotate_clockwise":
        return rate * np.stack([-offsets[:, 1], offsets[:, 0]], axis=1)
    if name == "rotate_counterclockwise":
        return rate * np.stack([offsets[:, 1], -offsets[:, 0]], axis=1)
    return (rate if name == "zoom_in" else -rate) * offsets


def _new_dots(rng, count):
    """Positions [count, 2], radii, RGB colours, lifetimes and failure
    directions [count, 2] of fresh dots."""
    return {
        "directions": _random_directions(rng, count),
        "positions": rng.uniform(-_MARGIN, _NOMINAL_SIZE + _MARGIN, size=(count, 2)),
        "radii": rng.uniform(*_DOT_RADIUS, size=count),
        "colours": rng.uniform(0.0, 255.0, size=(count, 3)),
        "lifetimes": rng.integers(*_DOT_LIFETIME, size=count),
    }


def _draw(dots, size):
    """One float32 frame [size, size, 3] of anti-aliased dots on grey."""
    frame = np.full((size, size, 3), _BACKGROUND, np.float32)
    unit = (1 << _SUBPIXEL_BITS) * size / _NOMINAL_SIZE
    centres = np.rint(dots["positions"] * unit).astype(int)
    radii = np.maximum(np.rint(dots["radii"] * unit).astype(int), 1)
    for (x, y), radius, colour in zip(centres, radii, dots["colours"]):
        cv2.circle(frame, (int(x), int(y)), int(radius), colour.tolist(), -1,
                   cv2.LINE_AA, _SUBPIXEL_BITS)
    return frame


def _respawn(rng, dots, ages):
    """Replace dots that outlived their lifetime or left the field."""
    positions = dots["positions"]
    outside = ((positions < -_MARGIN) | (positions > _NOMINAL_SIZE + _MARGIN)).any(axis=1)
    expired = outside | (ages >= dots["lifetimes"])
    count = int(expired.sum())
    if count:
        for key, value in _new_dots(rng, count).items():
            dots[key][expired] = value
        ages[expired] = 0


def _noise(rng, shape):
    """Integer pixel noise with a triangular, nearly gaussian distribution.

    The sum of two uniform integers in [-3, 3] has standard deviation 2.8
    grey levels and is much cheaper to draw than gaussian noise.
    """
    noise = rng.integers(-3, 4, shape, dtype=np.int8)
    noise += rng.integers(-3, 4, shape, dtype=np.int8)
    return noise


def _random_directions(rng, count):
    """Unit vectors [count, 2] in uniformly random directions."""
    angles = rng.uniform(0.0, 2.0 * math.pi, size=count)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def make_video(rng, motion_class, num_frames=150, size=DEFAULT_SIZE, change_frame=None):
    """Generate one video, uint8 RGB [num_frames, size, size, 3].

    All dots move with `motion_class` (an index into CLASS_NAMES).  If
    `change_frame` is given, the motion from frame `change_frame` to the
    next and all later ones is the failure: every dot, and every dot born
    later, moves in its own random direction.  Deterministic given the
    state of the numpy Generator `rng`.
    """
    if num_frames < 1 or size < 1:
        raise ValueError(f"num_frames and size must be positive, got {num_frames} and {size}")
    if not 0 <= motion_class < len(CLASS_NAMES):
        raise ValueError(f"motion_class must be in [0, {len(CLASS_NAMES)}), got {motion_class}")
    if change_frame is not None and not 0 <= change_frame < num_frames:
        raise ValueError(f"change_frame must be in [0, {num_frames}), got {change_frame}")
    speed = rng.uniform(*_SPEED)
    centre = _NOMINAL_SIZE / 2.0 + rng.uniform(-_CENTRE_OFFSET, _CENTRE_OFFSET, size=2)
    dots = _new_dots(rng, _NUM_DOTS)
    ages = rng.integers(0, dots["lifetimes"])  # dots do not all die together
    frames = np.empty((num_frames, size, size, 3), np.float32)
    for frame in range(num_frames):
        frames[frame] = _draw(dots, size)
        if change_frame is None or frame < change_frame:
            velocities = dot_velocities(motion_class, dots["positions"], speed, centre)
        else:
            velocities = speed * dots["directions"]
        dots["positions"] = dots["positions"] + velocities
        ages += 1
        _respawn(rng, dots, ages)
    frames += _noise(rng, frames.shape)
    np.rint(frames, out=frames)
    return np.clip(frames, 0, 255, out=frames).astype(np.uint8)


def _sample_change(rng, num_frames, change_fraction):
    """The frame of the failure of one video, or None."""
    if rng.random() >= change_fraction:
        return None
    low = math.ceil(_CHANGE_RANGE[0] * num_frames)
    high = math.floor(_CHANGE_RANGE[1] * num_frames)
    return int(rng.integers(low, high + 1))


def _num_test_groups(num_groups):
    """About a quarter of the groups of a class, at least one."""
    return max(1, int(round(_TEST_GROUP_FRACTION * num_groups)))


def _iter_videos(seed, videos_per_class, num_frames, size, change_fraction):
    """Yield the video records of the data set one at a time."""
    num_groups = math.ceil(videos_per_class / _GROUP_SIZE)
    if num_groups < 2:
        raise ValueError(
            f"videos_per_class must be > {_GROUP_SIZE} so that every class has a train "
            f"and a test group of {_GROUP_SIZE} clips, got {videos_per_class}"
        )
    if num_frames < 10:
        raise ValueError(f"num_frames must be at least 10, got {num_frames}")
    first_test_group = num_groups - _num_test_groups(num_groups)
    for label, class_name in enumerate(CLASS_NAMES):
        for clip_index in range(videos_per_class):
            rng = np.random.default_rng([seed, label * videos_per_class + clip_index])
            change_frame = _sample_change(rng, num_frames, change_fraction)
            group, clip = divmod(clip_index, _GROUP_SIZE)
            yield {
                "name": f"v_{camel_case(class_name)}_g{group + 1:02d}_c{clip + 1:02d}",
                "label": label,
                "class_name": class_name,
                "frames": make_video(rng, label, num_frames, size, change_frame),
                "change_frame": change_frame,
                "split": "test" if group >= first_test_group else "train",
            }


def make_dataset(seed=0, videos_per_class=12, num_frames=150, size=DEFAULT_SIZE,
                 change_fraction=0.5):
    """Generate the data set as a list of dicts, one per video.

    Keys: 'name' (UCF101 style, e.g. 'v_TranslateLeft_g01_c01'), 'label',
    'class_name', 'frames' (uint8 [num_frames, size, size, 3]),
    'change_frame' (the frame of the failure, None without one) and
    'split' ('train' or 'test').  Clips come in groups of 4; the last ~25% of
    the groups of each class (at least one) form the test split.  Each video
    independently gets an abrupt change with probability `change_fraction`.
    Video i uses its own Generator seeded with (seed, i).
    """
    return list(_iter_videos(seed, videos_per_class, num_frames, size, change_fraction))


def _atomic_write_text(path, text):
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def _write_avi(path, frames, fps):
    """Write RGB frames as an XVID .avi file, atomically."""
    temporary = path[: -len(".avi")] + ".tmp.avi"
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(temporary, cv2.VideoWriter_fourcc(*"XVID"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"cannot open an XVID video writer for {temporary}")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    os.replace(temporary, path)


def _transition_times(change_frame, num_frames, fps):
    """One entry of the Oops transition_times.json schema."""
    length = num_frames / fps
    if change_frame is None:
        return {"t": [-1.0] * 3, "len": length, "rel_t": [-1.0] * 3,
                "n_notfound": 3, "stdev": 0.0, "rel_stdev": 0.0}
    return {"t": [change_frame / fps] * 3, "len": length, "rel_t": [change_frame / num_frames] * 3,
            "n_notfound": 0, "stdev": 0.0, "rel_stdev": 0.0}


def _lines(items):
    return "".join(f"{item}\n" for item in items)


def _write_split_lists(splits_dir, train, test):
    """UCF101 ucfTrainTestlist files: classInd.txt, trainlist01.txt, testlist01.txt."""
    classes = (f"{i + 1} {camel_case(name)}" for i, name in enumerate(CLASS_NAMES))
    _atomic_write_text(os.path.join(splits_dir, "classInd.txt"), _lines(classes))
    train_lines = (f"{r['path']} {r['label'] + 1}" for r in train)
    _atomic_write_text(os.path.join(splits_dir, "trainlist01.txt"), _lines(train_lines))
    test_lines = (r["path"] for r in test)
    _atomic_write_text(os.path.join(splits_dir, "testlist01.txt"), _lines(test_lines))


def _write_oops_annotations(oops_dir, train, test, num_frames, fps):
    """Oops style train.txt, val.txt and transition_times.json."""
    _atomic_write_text(os.path.join(oops_dir, "train.txt"), _lines(r["name"] for r in train))
    _atomic_write_text(os.path.join(oops_dir, "val.txt"), _lines(r["name"] for r in test))
    times = {
        r["name"]: _transition_times(r["change_frame"], num_frames, fps) for r in train + test
    }
    _atomic_write_text(os.path.join(oops_dir, "transition_times.json"), json.dumps(times, indent=1))


def write_dataset(output_dir, seed=0, videos_per_class=12, num_frames=150, size=DEFAULT_SIZE,
                  change_fraction=0.5, fps=25):
    """Generate the data set and write videos, UCF101 splits and Oops annotations.

    Layout under `output_dir`: videos/<ClassName>/<name>.avi (XVID),
    splits/{classInd,trainlist01,testlist01}.txt, oops/{train,val}.txt,
    oops/transition_times.json and manifest.json.  Every file is written
    under a temporary name and then renamed.  Returns a summary dict.
    """
    output_dir = os.fspath(output_dir)
    dirs = {key: os.path.join(output_dir, key) for key in ("videos", "splits", "oops")}
    for class_name in CLASS_NAMES:
        os.makedirs(os.path.join(dirs["videos"], camel_case(class_name)), exist_ok=True)
    os.makedirs(dirs["splits"], exist_ok=True)
    os.makedirs(dirs["oops"], exist_ok=True)
    records = []
    for video in _iter_videos(seed, videos_per_class, num_frames, size, change_fraction):
        relative = f"{camel_case(video['class_name'])}/{video['name']}.avi"
        _write_avi(os.path.join(dirs["videos"], relative), video.pop("frames"), fps)
        records.append(dict(video, path=relative))
    train = [r for r in records if r["split"] == "train"]
    test = [r for r in records if r["split"] == "test"]
    _write_split_lists(dirs["splits"], train, test)
    _write_oops_annotations(dirs["oops"], train, test, num_frames, fps)
    manifest = {
        "seed": seed, "videos_per_class": videos_per_class, "num_frames": num_frames,
        "size": size, "change_fraction": change_fraction, "fps": fps,
        "class_names": list(CLASS_NAMES), "count": len(records),
    }
    manifest_path = os.path.join(output_dir, "manifest.json")
    _atomic_write_text(manifest_path, json.dumps(manifest, indent=1))
    return {
        "output_dir": output_dir,
        "num_videos": len(records),
        "num_train": len(train),
        "num_test": len(test),
        "num_changed": sum(r["change_frame"] is not None for r in records),
        "videos_dir": dirs["videos"],
        "splits_dir": dirs["splits"],
        "oops_dir": dirs["oops"],
        "manifest": manifest_path,
    }


def read_video(path):
    """Read a video file as uint8 RGB [frames, height, width, 3]."""
    capture = cv2.VideoCapture(os.fspath(path))
    if not capture.isOpened():
        raise ValueError(f"cannot open video file: {path}")
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    if not frames:
        raise ValueError(f"video file has no frames: {path}")
    return np.stack(frames)
