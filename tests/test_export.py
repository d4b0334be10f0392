"""SavedModels of the embedder and the Oops classifier, as TF Serving would use them."""

import os
import pathlib
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_memdpc import serving
from keras_memdpc.action_classifier import ActionClassifier
from keras_memdpc.memdpc import IMAGENET_MEAN, IMAGENET_STD, MemDPC
from keras_memdpc.oops_classifier import OopsClassifier, single_direction

REPO = pathlib.Path(__file__).resolve().parents[1]
SAVED_MODEL_CLI = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
BLOCKS, LENGTH, SIZE = 4, 3, 32
MEAN, STD = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)


def video_frames(count=LENGTH * BLOCKS, height=40, width=50, batch=2, seed=1):
    shape = (batch, count, height, width, 3)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def saved_model_cli(*args):
    """A saved_model_cli process, started (each takes seconds to import TensorFlow)."""
    return subprocess.Popen(SAVED_MODEL_CLI + [str(arg) for arg in args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(process):
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    return stdout


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny bidirectional MemDPC and an Oops classifier on its forward direction, exported.

    The saved_model_cli commands the tests check start here, so that they
    run while the other tests do.
    """
    root = tmp_path_factory.mktemp("serving")
    representation = MemDPC(image_size=SIZE, num_blocks=BLOCKS, block_length=LENGTH,
                            pred_steps=2, memory_size=16, seed=0)
    representation.build()
    classifier = OopsClassifier(single_direction(representation))
    # a head that is not the identity, so the probabilities depend on the features
    weights = np.random.default_rng(0).normal(0, 0.05, (512, 3)).astype(np.float32)
    classifier.final_fc.set_weights([weights, np.array([0.2, -0.1, 0.0], np.float32)])
    embedder_dir = serving.export_embedder(representation, root / "embedder")
    oops_dir = serving.export_oops(classifier, root / "oops")
    np.save(root / "frames.npy", video_frames())
    cli = {
        name: saved_model_cli("show", "--dir", path, "--tag_set", "serve",
                              "--signature_def", serving.SIGNATURE)
        for name, path in (("show_embedder", embedder_dir), ("show_oops", oops_dir))
    }
    cli["run_embedder"] = saved_model_cli(
        "run", "--dir", embedder_dir, "--tag_set", "serve", "--signature_def",
        serving.SIGNATURE, "--inputs", f"frames={root / 'frames.npy'}",
        "--outdir", root / "cli_outputs")
    yield {
        "representation": representation,
        "classifier": classifier,
        "embedder_dir": embedder_dir,
        "oops_dir": oops_dir,
        "embed": tf.saved_model.load(embedder_dir).signatures[serving.SIGNATURE],
        "classify": tf.saved_model.load(oops_dir).signatures[serving.SIGNATURE],
        "cli": cli,
        "root": root,
    }
    for process in cli.values():
        process.kill()
        process.communicate()


def keras_clips(frames):
    """The frames as the Keras models read them: [batch, blocks, 3, 32, 32, 3] float32."""
    clips = serving.preprocess_frames(tf.constant(frames), SIZE).numpy()
    return clips.reshape(len(frames), -1, LENGTH, SIZE, SIZE, 3)


def test_preprocessing_cuts_the_centre_and_normalises():
    # short side 37 = round(32 / 0.875): no resize, the centre 32 x 32 is cut
    frames = video_frames(count=1, height=37, width=60, batch=1)
    out = serving.preprocess_frames(tf.constant(frames), SIZE).numpy()
    expected = (frames[:, :, 2:34, 14:46] / 255.0 - MEAN) / STD
    np.testing.assert_allclose(out, expected, atol=1e-4)
    # any frame size: a uniform frame stays that colour, normalised
    uniform = np.full((1, 2, 300, 170, 3), (200, 10, 90), np.uint8)
    out = serving.preprocess_frames(tf.constant(uniform), SIZE).numpy()
    assert out.shape == (1, 2, SIZE, SIZE, 3)
    np.testing.assert_allclose(out, np.broadcast_to(
        (np.array([200, 10, 90]) / 255.0 - MEAN) / STD, out.shape), atol=1e-4)


def test_export_writes_the_tf_serving_layout(exported):
    for key in ("embedder_dir", "oops_dir"):
        path = pathlib.Path(exported[key])
        assert path.name == "1"
        assert (path / "saved_model.pb").is_file() and (path / "variables").is_dir()
        assert (path / "assets.extra" / "tf_serving_warmup_requests").is_file()
    with pytest.raises(FileExistsError, match="immutable"):
        serving.export_embedder(exported["representation"], exported["root"] / "embedder")


def test_served_embedding_is_the_keras_embedding(exported):
    representation = exported["representation"]
    frames = np.load(exported["root"] / "frames.npy")
    expected = representation.embed(keras_clips(frames)).numpy()
    served = exported["embed"](frames=tf.constant(frames))
    np.testing.assert_allclose(served["embedding"].numpy(), expected, atol=1e-5, rtol=0)
    features = np.maximum(representation.encoder(keras_clips(frames)).numpy(), 0)
    np.testing.assert_allclose(served["block_features"].numpy(), features.mean(axis=(2, 3)),
                               atol=1e-5, rtol=0)


def test_a_classification_checkpoint_embeds_with_its_own_context(exported):
    classifier = ActionClassifier(5, image_size=SIZE, num_blocks=BLOCKS, block_length=LENGTH,
                                  protocol="linear", seed=0)
    classifier.build()
    classifier.save(exported["root"] / "classifier.keras")
    representation = serving.load_representation(exported["root"] / "classifier.keras")
    assert isinstance(representation, ActionClassifier)
    frames = video_frames(batch=1)
    served = tf.function(serving.embed_frames)(representation, tf.constant(frames))
    expected = classifier.context(keras_clips(frames)).numpy()
    np.testing.assert_allclose(served["embedding"].numpy(), expected, atol=1e-5, rtol=0)


def test_longer_videos_average_the_embeddings_of_windows_one_block_apart(exported):
    representation = exported["representation"]
    frames = video_frames(count=LENGTH * (BLOCKS + 2), batch=1)
    clips = keras_clips(frames)
    windows = np.concatenate([clips[:, start:start + BLOCKS] for start in range(3)])
    expected = representation.embed(windows).numpy().mean(axis=0)
    served = exported["embed"](frames=tf.constant(frames))
    np.testing.assert_allclose(served["embedding"].numpy()[0], expected, atol=1e-5, rtol=0)
    assert served["block_features"].shape == (1, BLOCKS + 2, 256)
    normalised = serving.embed_frames(representation, tf.constant(frames), l2_normalize=True)
    np.testing.assert_allclose(normalised["embedding"].numpy()[0],
                               expected / np.linalg.norm(expected), atol=1e-5)


def test_served_oops_probabilities_and_failure_time(exported):
    classifier = exported["classifier"]
    frames = video_frames(count=LENGTH * (BLOCKS + 2))
    fps = np.array([25 / 3, 5.0], np.float32)
    served = exported["classify"](frames=tf.constant(frames), fps=tf.constant(fps))
    clips = keras_clips(frames)
    windows = np.stack([clips[:, start:start + BLOCKS] for start in range(3)], axis=1)
    logits = classifier(windows.reshape(-1, *windows.shape[2:])).numpy()
    expected = tf.nn.softmax(logits).numpy().reshape(2, 3, BLOCKS, 3)
    np.testing.assert_allclose(served["window_probabilities"].numpy(), expected,
                               atol=1e-5, rtol=0)
    blocks = np.zeros((2, BLOCKS + 2, 3))
    counts = np.zeros(BLOCKS + 2)
    for window in range(3):
        blocks[:, window:window + BLOCKS] += expected[:, window]
        counts[window:window + BLOCKS] += 1
    blocks /= counts[None, :, None]
    np.testing.assert_allclose(served["block_probabilities"].numpy(), blocks, atol=1e-5)
    for video in range(2):
        log_p = np.log(blocks[video])
        scores = [log_p[:k, 0].sum() + log_p[k, 1] + log_p[k + 1:, 2].sum()
                  for k in range(BLOCKS + 2)]
        k = int(np.argmax(scores))
        assert served["failure_block"].numpy()[video] == k
        assert served["failure_time"].numpy()[video] == pytest.approx(
            (k * LENGTH + (LENGTH - 1) / 2) / fps[video], rel=1e-6)


def test_bad_requests_get_errors_not_answers(exported):
    embed, classify = exported["embed"], exported["classify"]
    frames = video_frames(batch=1)
    for wrong in (frames.astype(np.float32), frames[0], frames[..., :2]):
        with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
            embed(frames=tf.constant(wrong))
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least num_blocks"):
        embed(frames=tf.constant(frames[:, :LENGTH * (BLOCKS - 1)]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiple of the block length"):
        embed(frames=tf.constant(frames[:, :LENGTH * BLOCKS - 1]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least num_blocks"):
        classify(frames=tf.constant(frames[:, :LENGTH]), fps=tf.constant([8.0]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="positive"):
        classify(frames=tf.constant(frames), fps=tf.constant([0.0]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="one value per video"):
        classify(frames=tf.constant(frames), fps=tf.constant([8.0, 8.0]))


def test_warmup_requests_parse_and_get_answers(exported):
    from tensorflow_serving.apis import prediction_log_pb2

    for key, served, names in (("embedder_dir", "embed", {"frames"}),
                               ("oops_dir", "classify", {"frames", "fps"})):
        path = os.path.join(exported[key], serving.WARMUP_FILE)
        records = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
        assert len(records) == 1
        request = prediction_log_pb2.PredictionLog.FromString(records[0]).predict_log.request
        assert request.model_spec.signature_name == serving.SIGNATURE
        assert set(request.inputs) == names
        inputs = {name: tf.make_ndarray(request.inputs[name]) for name in names}
        assert inputs["frames"].dtype == np.uint8
        assert inputs["frames"].shape == (1, BLOCKS * LENGTH, 37, 37, 3)
        answer = exported[served](**{k: tf.constant(v) for k, v in inputs.items()})
        assert all(np.isfinite(value.numpy()).all() for value in answer.values())


def test_example_models_config_parses():
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    text = (REPO / "export" / "models.config").read_text()
    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    models = {c.name: c for c in config.model_config_list.config}
    assert set(models) == {"memdpc_embedder", "memdpc_oops"}
    for name, model in models.items():
        assert model.base_path == f"/models/{name}" and model.model_platform == "tensorflow"


def test_checkpoints_give_their_memdpc(exported, tmp_path):
    representation = exported["representation"]
    representation.save(tmp_path / "pretrain.keras")
    exported["classifier"].save(tmp_path / "oops.keras")
    clips = keras_clips(video_frames(batch=1))
    loaded = serving.load_memdpc(tmp_path / "pretrain.keras")
    np.testing.assert_allclose(loaded.embed(clips), representation.embed(clips), atol=1e-6)
    inner = serving.load_memdpc(tmp_path / "oops.keras")
    assert not inner.bidirectional
    np.testing.assert_allclose(inner.embed(clips), representation.embed(clips)[:, :256],
                               atol=1e-5)
    oops = serving.load_oops_classifier(tmp_path / "oops.keras")
    np.testing.assert_allclose(oops(clips), exported["classifier"](clips), atol=1e-6)
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(tmp_path / "dense.keras")
    with pytest.raises(ValueError, match="dense.keras.*found 0"):
        serving.load_memdpc(tmp_path / "dense.keras")
    with pytest.raises(ValueError, match="dense.keras.*ActionClassifier.*found 0"):
        serving.load_representation(tmp_path / "dense.keras")
    assert isinstance(serving.load_representation(tmp_path / "oops.keras"), MemDPC)
    with pytest.raises(ValueError, match="dense.keras.*OopsClassifier"):
        serving.load_oops_classifier(tmp_path / "dense.keras")


def tensor_infos(text):
    """{name: (dtype, shape)} of the inputs and outputs saved_model_cli show prints."""
    pattern = re.compile(r"\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: \(([^)]*)\)")
    infos = {}
    for name, dtype, shape in pattern.findall(text):
        infos[name] = (dtype, tuple(int(d) for d in shape.split(",") if d.strip()))
    return infos


def test_saved_model_cli_shows_the_documented_signatures(exported):
    frames = ("DT_UINT8", (-1, -1, -1, -1, 3))
    assert tensor_infos(finished(exported["cli"]["show_embedder"])) == {
        "frames": frames,
        "embedding": ("DT_FLOAT", (-1, 512)),
        "block_features": ("DT_FLOAT", (-1, -1, 256)),
    }
    assert tensor_infos(finished(exported["cli"]["show_oops"])) == {
        "frames": frames,
        "fps": ("DT_FLOAT", (-1,)),
        "window_probabilities": ("DT_FLOAT", (-1, -1, BLOCKS, 3)),
        "block_probabilities": ("DT_FLOAT", (-1, -1, 3)),
        "failure_block": ("DT_INT32", (-1,)),
        "failure_time": ("DT_FLOAT", (-1,)),
    }


def test_saved_model_cli_run_gives_the_keras_embedding(exported):
    frames = np.load(exported["root"] / "frames.npy")
    expected = exported["representation"].embed(keras_clips(frames)).numpy()
    finished(exported["cli"]["run_embedder"])
    np.testing.assert_allclose(np.load(exported["root"] / "cli_outputs" / "embedding.npy"),
                               expected, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_onnx_export_reproduces_the_saved_model(exported, tmp_path):
    pytest.importorskip("tf2onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    serving.export_oops(exported["classifier"], tmp_path / "oops", warmup=False,
                        onnx_path=str(tmp_path / "oops.onnx"))
    session = onnxruntime.InferenceSession(str(tmp_path / "oops.onnx"))
    frames = video_frames(count=LENGTH * (BLOCKS + 1), height=30, width=37)  # no shrinking
    fps = np.array([8.0, 4.0], np.float32)
    names = [output.name for output in session.get_outputs()]
    answer = dict(zip(names, session.run(None, {"frames": frames, "fps": fps})))
    served = exported["classify"](frames=tf.constant(frames), fps=tf.constant(fps))
    for name in ("window_probabilities", "block_probabilities", "failure_block", "failure_time"):
        np.testing.assert_allclose(answer[name], served[name].numpy(), atol=1e-5)


def test_the_export_scripts_write_random_models_and_refuse_mixed_flags(exported, tmp_path):
    def script(name, *flags):
        return subprocess.Popen([sys.executable, str(REPO / "export" / name), *flags],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    tiny = ["--image_size=32", "--num_blocks=4", "--block_length=3", "--nowarmup"]
    runs = {
        "embedder": script("export_embedder.py", f"--output_dir={tmp_path / 'e'}", *tiny),
        "oops": script("export_oops.py", f"--output_dir={tmp_path / 'o'}", *tiny),
        "mixed": script("export_oops.py", f"--output_dir={tmp_path / 'm'}",
                        f"--checkpoint={exported['root']}/none.keras", "--image_size=64"),
    }
    outputs = {name: process.communicate(timeout=300) for name, process in runs.items()}
    for name, folder in (("embedder", "e"), ("oops", "o")):
        assert runs[name].returncode == 0, outputs[name][1][-2000:]
        assert f"SavedModel: {tmp_path / folder / '1'}" in outputs[name][0]
        assert (tmp_path / folder / "1" / "saved_model.pb").exists()
    assert runs["mixed"].returncode != 0
    assert "--image_size: only for a random model" in outputs["mixed"][1]
    assert not (tmp_path / "m").exists()
    signature = tf.saved_model.load(tmp_path / "o" / "1").signatures[serving.SIGNATURE]
    probabilities = signature(frames=tf.constant(video_frames()), fps=tf.constant([5.0, 5.0]))
    assert probabilities["block_probabilities"].shape == (2, BLOCKS, 3)
