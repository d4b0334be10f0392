"""Built-in synthetic video data set whose classes are defined by motion alone.

Every video shows a random scene (a full-frame texture of sinusoid gratings in
random colours plus 1-3 textured discs, squares or triangles) and the whole
image undergoes one of eight global motions: translation left/right/up/down,
rotation clockwise/counterclockwise, zoom in/out.  Colours, textures, shapes,
positions, scale and speed are drawn independently of the class, so no single
frame reveals the class; only the motion does.

The scene is evaluated analytically at the moving pixel positions, so there
are no borders, seams or interpolation blur.  Each grating is weighted by its
on-screen frequency, like a camera that resolves finer detail as it zooms in,
so zooming neither blurs nor sharpens the texture.

Optionally (Oops style) a video switches at `change_frame` to a different
motion class for the rest of the video; its label stays the first class.

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

_NOMINAL_SIZE = 64.0  # scene geometry is defined for a 64 px frame
_TRANSLATION_SPEED = (0.5, 1.5)  # nominal pixels per frame
_ROTATION_SPEED = (1.0, 3.0)  # degrees per frame
_ZOOM_FACTOR = (1.008, 1.015)  # scale factor per frame
_SCENE_SCALE = (0.5, 2.0)  # frame pixels per scene unit (log-uniform)
_PEAK_FREQUENCY = 0.07  # on-screen cycles per nominal pixel, most visible
_FREQUENCY_SIGMA = 0.8  # octaves, width of the visibility window
_FREQUENCY_MARGIN = 1.5  # octaves sampled beyond the peak on each side
_GRATINGS_PER_OCTAVE = (1.5, 2.5)
_SHAPE_RADIUS = (8.0, 20.0)  # scene units
_SHAPE_PERIOD = (60.0, 100.0)  # shapes repeat on a lattice (scene units)
_SHAPE_KINDS = ("disc", "square", "triangle")
_NOISE_HALF_WIDTH = 3  # grey levels, see _noise
_GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))  # radians, mod pi
_BASE_GRAY = (90.0, 165.0)  # mean grey level of a texture
_BASE_TINT = 12.0  # at most this far from grey per channel: colours come from
# the zero-mean gratings, so every frame's mean colour is near grey and the
# pooled colour, the first thing any network encodes, does not tell clips apart
_CHANGE_RANGE = (0.2, 0.8)  # relative position of the abrupt change
_GROUP_SIZE = 4
_TEST_GROUP_FRACTION = 0.25


def camel_case(class_name):
    """Return the UCF101 style CamelCase name, e.g. 'TranslateLeft'."""
    return "".join(word.capitalize() for word in class_name.split("_"))


def _translation(dx, dy):
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def _rotation_scale(angle, scale):
    cos, sin = scale * math.cos(angle), scale * math.sin(angle)
    return np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])


def _about_centre(matrix):
    """Make a linear 3x3 map act about the frame centre."""
    centre = _NOMINAL_SIZE / 2.0
    return _translation(centre, centre) @ matrix @ _translation(-centre, -centre)


def _motion_step(rng, motion_class):
    """Per-frame motion (3x3, nominal frame coordinates) with a random speed.

    Image y points down, so a positive angle turns the image clockwise.
    """
    name = CLASS_NAMES[motion_class]
    if name.startswith("translate"):
        speed = rng.uniform(*_TRANSLATION_SPEED)
        direction = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
        dx, dy = direction[name.split("_")[1]]
        return _translation(speed * dx, speed * dy)
    if name.startswith("rotate"):
        angle = math.radians(rng.uniform(*_ROTATION_SPEED))
        sign = 1.0 if name == "rotate_clockwise" else -1.0
        return _about_centre(_rotation_scale(sign * angle, 1.0))
    factor = rng.uniform(*_ZOOM_FACTOR)
    if name == "zoom_out":
        factor = 1.0 / factor
    return _about_centre(_rotation_scale(0.0, factor))


def _scene_to_frame(rng, motion_class, num_frames, change_frame, change_class):
    """Per-frame maps from scene to nominal frame coordinates, [frames, 3, 3].

    Steps up to frame `change_frame` use `motion_class`, later steps use
    `change_class`.  The scene origin starts at the frame centre, at a random
    angle and at a scale chosen so that the log scale range of a zoom is
    centred on a random base scale.
    """
    steps = [_motion_step(rng, motion_class)]
    if change_frame is not None:
        steps.append(_motion_step(rng, change_class))
    motions = [np.eye(3)]
    for frame in range(1, num_frames):
        step = steps[0] if change_frame is None or frame <= change_frame else steps[1]
        motions.append(step @ motions[-1])
    motions = np.stack(motions)
    log_scales = 0.5 * np.log(np.linalg.det(motions[:, :2, :2]))
    base_scale = math.exp(rng.uniform(*np.log(_SCENE_SCALE)))
    scale = base_scale * math.exp(-0.5 * (log_scales.max() + log_scales.min()))
    angle = rng.uniform(0.0, 2.0 * math.pi)
    centre = _NOMINAL_SIZE / 2.0
    return motions @ _translation(centre, centre) @ _rotation_scale(angle, scale)


def _random_texture(rng, log2_frequency_range):
    """A colour texture: a base colour plus sinusoid gratings in random colours."""
    low, high = log2_frequency_range
    density = rng.uniform(*_GRATINGS_PER_OCTAVE)
    count = max(1, int(round(density * (high - low))))
    # Gratings sorted by frequency get orientations a golden angle apart, so
    # any band of frequencies holds several orientations: a single visible
    # grating would make translation ambiguous (the aperture problem).
    orientation = rng.uniform(0.0, math.pi) + _GOLDEN_ANGLE * np.arange(count)
    contrast = rng.uniform(15.0, 45.0)
    return {
        "base": rng.uniform(*_BASE_GRAY) + rng.uniform(-_BASE_TINT, _BASE_TINT, size=3),
        "frequencies": np.sort(2.0 ** rng.uniform(low, high, size=count)),
        "directions": np.stack([np.cos(orientation), np.sin(orientation)]),
        "phases": rng.uniform(0.0, 2.0 * math.pi, size=count),
        "colours": contrast * rng.uniform(-1.0, 1.0, size=(count, 3)),
    }


def _grating_weights(frequencies, scales, size):
    """Visibility [frames, gratings] of gratings at the current scales.

    A log-normal window around the peak on-screen frequency, cut off smoothly
    below the Nyquist frequency of the actual frame size.
    """
    on_screen = frequencies[None, :] / scales[:, None]
    octaves = np.log2(on_screen / _PEAK_FREQUENCY)
    window = np.exp(-0.5 * (octaves / _FREQUENCY_SIGMA) ** 2)
    per_pixel = on_screen * _NOMINAL_SIZE / size
    anti_alias = np.clip(2.0 - 4.0 * per_pixel, 0.0, 1.0)
    return (window * anti_alias).astype(np.float32)


def _pixel_centres(size):
    """Nominal coordinates [size] of the pixel centres along one axis."""
    return (np.arange(size) + 0.5) * (_NOMINAL_SIZE / size)


def _render_texture(texture, frame_to_scene, scales, size):
    """Texture colours [frames, size, size, 3] seen through each frame.

    A grating cos(a x + b y + c) equals cos(a x + c) cos(b y) minus
    sin(a x + c) sin(b y), so summing the coloured gratings over the image is
    one small matrix product per frame instead of a cosine per pixel.
    """
    wave_vectors = 2.0 * math.pi * texture["frequencies"] * texture["directions"]
    a, b, c = np.einsum("tij,ik->jtk", frame_to_scene[:, :2, :], wave_vectors)
    coords = _pixel_centres(size)
    phase_x = (a[:, :, None] * coords + (c + texture["phases"])[:, :, None]).astype(np.float32)
    phase_y = (b[:, None, :] * coords[:, None]).astype(np.float32)
    columns = np.concatenate([np.cos(phase_y), -np.sin(phase_y)], axis=2)
    weights = np.tile(_grating_weights(texture["frequencies"], scales, size), 2)
    rows = np.concatenate([np.cos(phase_x), np.sin(phase_x)], axis=1) * weights[:, :, None]
    colours = np.tile(texture["colours"], (2, 1)).astype(np.float32)
    # [frames, 2 * gratings, width * 3]: each grating's row pattern in its colour.
    rows = (rows[..., None] * colours[None, :, None, :]).reshape(len(scales), -1, size * 3)
    image = columns @ rows
    image += np.tile(texture["base"], size).astype(np.float32)
    return image.reshape(len(scales), size, size, 3)


def _random_shape(rng, log2_frequency_range):
    """A textured disc, square or triangle, repeated on its own square lattice.

    'to_local' maps scene coordinates to the shape's frame: centred on the
    shape, rotated with it and with the lattice axes along x and y.
    """
    angle = rng.uniform(0.0, 2.0 * math.pi)
    centre = rng.uniform(0.0, 100.0, size=2)
    return {
        "kind": _SHAPE_KINDS[rng.integers(len(_SHAPE_KINDS))],
        "radius": rng.uniform(*_SHAPE_RADIUS),
        "period": rng.uniform(*_SHAPE_PERIOD),
        "to_local": _rotation_scale(-angle, 1.0) @ _translation(-centre[0], -centre[1]),
        "texture": _random_texture(rng, log2_frequency_range),
    }


def _signed_distance(kind, x, y, radius):
    """Approximate signed distance (scene units) to a shape centred at 0."""
    if kind == "disc":
        return np.hypot(x, y) - radius
    if kind == "square":
        return np.maximum(np.abs(x), np.abs(y)) - 0.85 * radius
    # Equilateral triangle: the largest of the distances to its three edges.
    return np.maximum(y, 0.866 * np.abs(x) - 0.5 * y) - 0.6 * radius


def _pixel_coordinate(frame_to_target, axis, size):
    """Coordinate `axis` (0: x, 1: y) of every pixel mapped by 3x3 matrices.

    Returns float32 [frames, size, size].
    """
    coords = _pixel_centres(size).astype(np.float32)
    row = frame_to_target[:, axis, :, None, None].astype(np.float32)
    return row[:, 0] * coords[None, None, :] + row[:, 1] * coords[None, :, None] + row[:, 2]


def _shape_alpha(shape, frame_to_scene, scales, size):
    """Anti-aliased coverage [frames, size, size, 1] of a shape and its copies."""
    frame_to_local = shape["to_local"] @ frame_to_scene
    period = shape["period"]
    local = []
    for axis in (0, 1):
        coordinate = _pixel_coordinate(frame_to_local, axis, size)
        coordinate -= period * np.floor(coordinate / period + 0.5)
        local.append(coordinate)
    distance = _signed_distance(shape["kind"], local[0], local[1], shape["radius"])
    distance *= -(scales * size / _NOMINAL_SIZE).astype(np.float32)[:, None, None]
    distance += 0.5
    return np.clip(distance, 0.0, 1.0, out=distance)[..., None]


def _render(scene, frame_to_scene, size):
    """Noise-free float32 frames [frames, size, size, 3]."""
    scales = 1.0 / np.sqrt(np.linalg.det(frame_to_scene[:, :2, :2]))
    frames = _render_texture(scene["background"], frame_to_scene, scales, size)
    for shape in scene["shapes"]:
        colours = _render_texture(shape["texture"], frame_to_scene, scales, size)
        colours -= frames
        colours *= _shape_alpha(shape, frame_to_scene, scales, size)
        frames += colours
    return frames


def _random_scene(rng, scene_to_frame):
    """Background texture and 1-3 shapes covering the frequencies the video needs."""
    scales = np.sqrt(np.linalg.det(scene_to_frame[:, :2, :2]))
    log2_range = (
        math.log2(_PEAK_FREQUENCY * scales.min()) - _FREQUENCY_MARGIN,
        math.log2(_PEAK_FREQUENCY * scales.max()) + _FREQUENCY_MARGIN,
    )
    num_shapes = int(rng.integers(1, 4))
    return {
        "background": _random_texture(rng, log2_range),
        "shapes": [_random_shape(rng, log2_range) for _ in range(num_shapes)],
    }


def _noise(rng, shape):
    """Integer pixel noise with a triangular, nearly gaussian distribution.

    The sum of two uniform integers in [-3, 3] has standard deviation 2.8
    grey levels and is much cheaper to draw than gaussian noise.
    """
    noise = rng.integers(-_NOISE_HALF_WIDTH, _NOISE_HALF_WIDTH + 1, shape, dtype=np.int8)
    noise += rng.integers(-_NOISE_HALF_WIDTH, _NOISE_HALF_WIDTH + 1, shape, dtype=np.int8)
    return noise


def make_video(rng, motion_class, num_frames=150, size=64, change_frame=None, change_class=None):
    """Generate one video, uint8 RGB [num_frames, size, size, 3].

    The whole image moves with `motion_class` (an index into CLASS_NAMES).
    If `change_frame` is given, the motion from frame `change_frame` to the
    next and all later ones follows `change_class` instead.  Deterministic
    given the state of the numpy Generator `rng`.
    """
    if num_frames < 1 or size < 1:
        raise ValueError(f"num_frames and size must be positive, got {num_frames} and {size}")
    if not 0 <= motion_class < len(CLASS_NAMES):
        raise ValueError(f"motion_class must be in [0, {len(CLASS_NAMES)}), got {motion_class}")
    if (change_frame is None) != (change_class is None):
        raise ValueError("change_frame and change_class must be given together")
    if change_frame is not None and not 0 <= change_frame < num_frames:
        raise ValueError(f"change_frame must be in [0, {num_frames}), got {change_frame}")
    if change_class is not None and not 0 <= change_class < len(CLASS_NAMES):
        raise ValueError(f"change_class must be in [0, {len(CLASS_NAMES)}), got {change_class}")
    scene_to_frame = _scene_to_frame(rng, motion_class, num_frames, change_frame, change_class)
    scene = _random_scene(rng, scene_to_frame)
    frames = _render(scene, np.linalg.inv(scene_to_frame), size)
    frames += _noise(rng, frames.shape)
    np.rint(frames, out=frames)
    return np.clip(frames, 0, 255, out=frames).astype(np.uint8)


def _sample_change(rng, label, num_frames, change_fraction):
    """(change_frame, change_class) or (None, None) for one video."""
    if rng.random() >= change_fraction:
        return None, None
    low = math.ceil(_CHANGE_RANGE[0] * num_frames)
    high = math.floor(_CHANGE_RANGE[1] * num_frames)
    change_frame = int(rng.integers(low, high + 1))
    others = [c for c in range(len(CLASS_NAMES)) if c != label]
    return change_frame, others[rng.integers(len(others))]


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
            change_frame, change_class = _sample_change(rng, label, num_frames, change_fraction)
            group, clip = divmod(clip_index, _GROUP_SIZE)
            yield {
                "name": f"v_{camel_case(class_name)}_g{group + 1:02d}_c{clip + 1:02d}",
                "label": label,
                "class_name": class_name,
                "frames": make_video(rng, label, num_frames, size, change_frame, change_class),
                "change_frame": change_frame,
                "change_class": change_class,
                "split": "test" if group >= first_test_group else "train",
            }


def make_dataset(seed=0, videos_per_class=12, num_frames=150, size=64, change_fraction=0.5):
    """Generate the data set as a list of dicts, one per video.

    Keys: 'name' (UCF101 style, e.g. 'v_TranslateLeft_g01_c01'), 'label',
    'class_name', 'frames' (uint8 [num_frames, size, size, 3]),
    'change_frame' and 'change_class' (None without an abrupt change) and
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


def write_dataset(output_dir, seed=0, videos_per_class=12, num_frames=150, size=64,
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
