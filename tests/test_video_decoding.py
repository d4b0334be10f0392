"""Decoding real video files and JPEG frame folders into resized RGB frames."""

import pickle
import shutil

import cv2
import numpy as np
import pytest

from keras_memdpc.video_decoding import (
    VideoDecodeError,
    VideoFrames,
    decode_frame_folder,
    decode_video,
    resized_size,
)


def first_frame_rgb(path):
    """Frame 0 read independently, full size, RGB."""
    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read()
    capture.release()
    assert ok
    return frame[..., ::-1]


def cut_copy(source, destination, fraction):
    data = source.read_bytes()
    destination.write_bytes(data[: int(len(data) * fraction)])
    return destination


@pytest.mark.parametrize(
    "height, width, short_side, upscale, expected",
    [
        (1080, 1920, 256, False, (256, 455)),
        (1920, 1080, 150, False, (267, 150)),
        (240, 320, 256, False, (240, 320)),
        (240, 320, 256, True, (256, 341)),
        (256, 340, 256, False, (256, 340)),
    ],
)
def test_resized_size_keeps_aspect_and_never_enlarges_unless_asked(
        height, width, short_side, upscale, expected):
    assert resized_size(height, width, short_side, upscale) == expected


@pytest.mark.parametrize(
    "name, frames, fps, size",
    [
        ("v_ApplyEyeMakeup_test.avi", 164, 25.0, (64, 85)),  # FMP4 avi, 320x240
        ("flipping_pancake.mkv", 310, 30.0, (64, 114)),  # h264 mkv, 426x240, announces 311
        ("short_36_frames.mp4", 36, 30.02, (64, 85)),  # h264 mp4, 320x240
        ("ntu_drink_water_1080p.avi", 103, 30.0, (64, 114)),  # h264 avi, 1920x1080
    ],
)
def test_decodes_each_container_to_the_short_side(shared_data, name, frames, fps, size):
    path = shared_data / "videos" / name
    video = decode_video(path, short_side=64)
    assert video.frames.shape == (frames, *size, 3)
    assert video.frames.dtype == np.uint8
    assert video.fps == pytest.approx(fps, abs=0.01)
    assert not video.truncated
    # RGB order and area averaging: the mean colour of the full-size frame survives.
    full = first_frame_rgb(path).reshape(-1, 3).mean(axis=0)
    small = video.frames[0].reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(small, full, atol=1.5)


def test_small_videos_keep_their_size_unless_upscale(shared_data):
    path = shared_data / "videos" / "short_36_frames.mp4"
    kept = VideoFrames(path, short_side=256)
    first = next(iter(kept))
    assert first.shape == (240, 320, 3)
    np.testing.assert_array_equal(first, first_frame_rgb(path))
    enlarged = decode_video(path, short_side=256, upscale=True)
    assert enlarged.frames.shape == (36, 256, 341, 3)


def test_a_cut_avi_keeps_the_frames_that_decode_and_is_flagged(shared_data, tmp_path):
    source = shared_data / "videos" / "v_ApplyEyeMakeup_test.avi"
    full = decode_video(source, short_side=64)
    cut = decode_video(cut_copy(source, tmp_path / "cut.avi", 0.4), short_side=64)
    assert cut.truncated
    assert cut.expected_frames == 164
    assert 10 < len(cut.frames) < 0.6 * 164
    np.testing.assert_array_equal(cut.frames, full.frames[: len(cut.frames)])


def test_unusable_files_raise_with_a_short_reason(shared_data, tmp_path):
    cut_mp4 = cut_copy(shared_data / "videos" / "short_36_frames.mp4", tmp_path / "cut.mp4", 0.4)
    garbage = tmp_path / "x.mp4"
    garbage.write_bytes(np.random.default_rng(0).bytes(20000))
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    cases = [(tmp_path / "absent.mp4", "missing"), (empty, "empty file"),
             (garbage, "unreadable"), (cut_mp4, "unreadable")]
    for path, reason in cases:
        with pytest.raises(VideoDecodeError) as raised:
            decode_video(path, short_side=64)
        assert raised.value.reason == reason
        assert str(path) in str(raised.value)


def test_decode_error_survives_pickling():
    error = pickle.loads(pickle.dumps(VideoDecodeError("/videos/a.mp4", "unreadable")))
    assert (error.path, error.reason) == ("/videos/a.mp4", "unreadable")
    assert str(error) == "/videos/a.mp4: unreadable"


def test_frame_folder_decodes_resizes_and_takes_fps(shared_data):
    folder = shared_data / "frames" / "jpeg_folders" / "jumping" / "0001"
    paths = sorted(folder.glob("*.jpg"))
    video = decode_frame_folder(folder, paths, short_side=64, fps=12.5)
    assert video.frames.shape == (17, 64, 114, 3)  # 426x240 JPEGs
    assert (video.fps, video.truncated, video.expected_frames) == (12.5, False, 17)
    full = cv2.imread(str(paths[3]))[..., ::-1].reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(video.frames[3].reshape(-1, 3).mean(axis=0), full, atol=1.5)


def test_frame_folder_stops_at_an_unreadable_jpeg(shared_data, tmp_path):
    source = shared_data / "frames" / "jpeg_folders" / "running" / "0001"
    paths = []
    for index, frame in enumerate(sorted(source.glob("*.jpg"))[:5]):
        paths.append(tmp_path / frame.name)
        if index == 2:
            paths[-1].write_bytes(b"not a jpeg")
        else:
            shutil.copy(frame, paths[-1])
    video = decode_frame_folder(tmp_path, paths, short_side=64)
    assert video.truncated and video.frames.shape[0] == 2
    with pytest.raises(VideoDecodeError, match="unreadable"):
        decode_frame_folder(tmp_path, paths[2:], short_side=64)
    with pytest.raises(VideoDecodeError, match="missing"):
        decode_frame_folder(tmp_path, [tmp_path / "img_99999.jpg"], short_side=64)
    with pytest.raises(VideoDecodeError, match="no frames"):
        decode_frame_folder(tmp_path, [], short_side=64)
