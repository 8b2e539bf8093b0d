"""Session fixtures: tiny random models built from real config classes, saved and loaded the users' way."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def tiny_janus_dir(tmp_path_factory):
    """A folder holding a tiny random Janus (64 px, 16 image tokens) as `unirl models create-tiny janus` writes it."""
    from unirl_cli.models.janus.tiny import build_tiny_janus

    return build_tiny_janus(tmp_path_factory.mktemp("tiny_janus"))


@pytest.fixture(scope="session")
def tiny_janus(tiny_janus_dir):
    """The tiny Janus loaded through the same path as a downloaded model. Do not train it in place."""
    from unirl_cli.models.janus import JanusModel

    return JanusModel.load(str(tiny_janus_dir))


@pytest.fixture(scope="session")
def tiny_showo_dir(tmp_path_factory):
    """A folder holding a tiny random Show-o in the official file layout (`unirl models create-tiny showo`)."""
    from unirl_cli.models.showo.tiny import build_tiny_showo

    return build_tiny_showo(tmp_path_factory.mktemp("tiny_showo"))


@pytest.fixture(scope="session")
def tiny_showo(tiny_showo_dir):
    """The tiny Show-o loaded through the user's path. Do not train it in place."""
    from unirl_cli.models.showo import ShowoModel

    return ShowoModel.load(str(tiny_showo_dir))
