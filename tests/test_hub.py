"""`unirl download` errors, against a local stand-in for the hub API (loopback only)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from unirl_cli.errors import UnirlError
from unirl_cli.models.hub import download
from unirl_cli.models.registry import detect_family, known_names, lookup_spec

from tests.hub_standin import HubStandIn


@pytest.fixture(scope="module")
def hub_endpoint(tmp_path_factory):
    errors = {"someone/gated-model": (403, "GatedRepo"), "someone/missing-model": (404, "RepoNotFound")}
    with HubStandIn({}, errors) as hub:
        yield hub.endpoint


def run_cli(*args, **env):
    full_env = {**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1", **env}
    if "HF_HUB_OFFLINE" not in env:
        full_env.pop("HF_HUB_OFFLINE", None)
    return subprocess.run([sys.executable, "-m", "unirl_cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=120)


def test_unknown_name_lists_known_ones():
    with pytest.raises(UnirlError) as err:
        download("janus-pro-2b")
    assert "janus-pro-1b" in str(err.value) and "showo-512" in str(err.value)


def test_aliases_resolve():
    assert lookup_spec("janus").name == "janus-pro-1b"
    assert lookup_spec("SHOWO").name == "showo-512"
    assert "geneval-models" in known_names()


def test_offline_download_is_one_clear_line(tmp_path):
    result = run_cli("download", "janus-pro-1b", HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path))
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "HF_HUB_OFFLINE" in lines[0] and "Traceback" not in result.stderr


def test_no_network_mentions_mirror_and_local_folder(tmp_path):
    # An endpoint nobody listens on behaves like a machine without network.
    result = run_cli("download", "janus-pro-1b", HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path),
                     HF_HUB_ETAG_TIMEOUT="2", HF_HUB_DOWNLOAD_TIMEOUT="2")
    assert result.returncode != 0
    assert "HF_ENDPOINT" in result.stderr and "--model" in result.stderr and "Traceback" not in result.stderr


def test_gated_repo_says_how_to_log_in(hub_endpoint, tmp_path):
    result = run_cli("download", "someone/gated-model", HF_ENDPOINT=hub_endpoint, HF_HOME=str(tmp_path))
    assert result.returncode != 0 and "HF_TOKEN" in result.stderr and "gated" in result.stderr


def test_missing_repo_is_reported(hub_endpoint, tmp_path):
    result = run_cli("download", "someone/missing-model", HF_ENDPOINT=hub_endpoint, HF_HOME=str(tmp_path))
    assert result.returncode != 0 and "not found" in result.stderr


def test_disk_full_is_explained():
    from unirl_cli.models.hub import explain_hub_error

    error = explain_hub_error(OSError(28, "No space left on device"), "a/b")
    assert "disk full" in str(error)


def test_detect_family_errors(tmp_path):
    with pytest.raises(UnirlError, match="no config.json"):
        detect_family(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"language_config": {}, "gen_vision_config": {}}))
    with pytest.raises(UnirlError, match="convert-janus"):
        detect_family(tmp_path)


def test_download_then_generate_by_name_through_the_hub_path(tiny_janus_dir, tmp_path):
    """`unirl download janus-pro-1b` against a loopback hub serving a tiny Janus, then load it by name."""
    repo = tmp_path / "repo"
    shutil.copytree(tiny_janus_dir, repo)
    (repo / "README.md").write_text("model card")  # not needed by unirl: must not be fetched
    (repo / "pytorch_model.bin").write_bytes(b"same weights again")  # safetensors present: must not be fetched
    env = {"HF_HOME": str(tmp_path / "hf")}
    with HubStandIn({"deepseek-community/Janus-Pro-1B": repo}) as hub:
        result = run_cli("download", "janus-pro-1b", HF_ENDPOINT=hub.endpoint, **env)
        assert result.returncode == 0, result.stderr
        assert "model.safetensors" in hub.requested_files
        assert "README.md" not in hub.requested_files and "pytorch_model.bin" not in hub.requested_files
    # Offline now: the cached snapshot is found by name.
    result = run_cli("generate", "a red circle", "--model", "janus-pro-1b", "-n", "1", "--out",
                     str(tmp_path / "img"), HF_HUB_OFFLINE="1", **env)
    assert result.returncode == 0, result.stderr
    metadata = json.loads((tmp_path / "img" / "metadata.json").read_text())
    assert metadata["model"]["hub_id"] == "deepseek-community/Janus-Pro-1B"
    assert metadata["model"]["revision"] is not None


def test_download_deepseek_format_converts_once(tmp_path):
    """`unirl download janus-1.3b` fetches DeepSeek's layout and converts it to the transformers layout."""
    from unirl_cli.models.janus.tiny import build_tiny_deepseek_janus

    repo = build_tiny_deepseek_janus(tmp_path / "deepseek")
    env = {"HF_HOME": str(tmp_path / "hf"), "UNIRL_HOME": str(tmp_path / "unirl")}
    with HubStandIn({"deepseek-ai/Janus-1.3B": repo}) as hub:
        result = run_cli("download", "janus-1.3b", HF_ENDPOINT=hub.endpoint, **env)
    assert result.returncode == 0, result.stderr
    converted = list((tmp_path / "unirl" / "converted" / "janus-1.3b").glob("*/config.json"))
    assert len(converted) == 1 and json.loads(converted[0].read_text())["model_type"] == "janus"
    result = run_cli("generate", "a red circle", "--model", "janus-1.3b", "-n", "1", "--out", str(tmp_path / "img"),
                     HF_HUB_OFFLINE="1", **env)
    assert result.returncode == 0, result.stderr
