"""Shared test settings: quiet TensorFlow, the --runslow flag, shared data."""

import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_addoption(parser):
    parser.addoption(
        "--runslow", action="store_true", default=False, help="run slow tests"
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def shared_data():
    """../shared/data next to the project root; skips when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"no shared data at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def synthetic_pretraining(tmp_path_factory):
    """tests.synthetic_pretraining.pretrain run once: its figures and "path"."""
    from tests.synthetic_pretraining import pretrain

    path = tmp_path_factory.mktemp("synthetic_pretraining") / "memdpc.keras"
    return {**pretrain(path), "path": str(path)}
