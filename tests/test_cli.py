"""The `unirl` commands as a user types them, on a tiny model, and their one-line errors."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from unirl_cli.cli import app, state
from unirl_cli.cli.common import console

runner = CliRunner()


def invoke(*args: str):
    """Run the app like the console script does (errors become one line and an exit code)."""
    state.debug = False
    try:
        result = runner.invoke(app, list(args), catch_exceptions=False)
    except SystemExit as exit_:  # _App.__call__ turns UnirlError into sys.exit(2)
        raise AssertionError("unexpected SystemExit") from exit_
    return result


def run_console_script(*args: str, env: dict | None = None):
    import os
    import subprocess
    import sys

    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "unirl_cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=300)


def test_help_is_instant_and_lists_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("generate", "understand", "download", "models"):
        assert command in result.output


def test_generate_then_understand_on_tiny_model(tiny_janus_dir, tmp_path):
    out = tmp_path / "images"
    result = run_console_script("generate", "a photo of a red circle", "--model", str(tiny_janus_dir), "-n", "3",
                                "--seed", "7", "--out", str(out), "--grid", "--batch-size", "2", "--cfg", "3")
    assert result.returncode == 0, result.stderr
    pngs = sorted(p.name for p in out.glob("0*.png"))
    assert pngs == ["00000.png", "00001.png", "00002.png"] and (out / "grid.png").is_file()
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["prompt"] == "a photo of a red circle" and metadata["seeds"] == [7, 8, 9]
    assert metadata["sampling"]["guidance_scale"] == 3.0 and metadata["model"]["family"] == "janus"
    assert not list(out.glob(".*tmp*")), "temporary files left behind"

    result = run_console_script("understand", str(out / "00000.png"), str(out / "00001.png"),
                                "What is in this image?", "--model", str(tiny_janus_dir), "--max-new-tokens", "4")
    assert result.returncode == 0, result.stderr
    assert len([line for line in result.stdout.splitlines() if line.strip()]) == 2


def test_generate_same_seed_same_image(tiny_janus_dir, tmp_path):
    for name in ("a", "b"):
        result = run_console_script("generate", "two blue squares", "--model", str(tiny_janus_dir), "-n", "1",
                                    "--seed", "3", "--out", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "a" / "00000.png").read_bytes() == (tmp_path / "b" / "00000.png").read_bytes()


@pytest.mark.parametrize("args, expected", [
    (["generate", "a cat", "--model", "janus-pro-2b"], "is not known"),
    (["generate", "a cat", "--model", "./no/such/folder"], "does not exist"),
    (["generate", "a cat", "-n", "0"], "--num-images must be > 0"),
    (["generate", "a cat", "--top-p", "1.5"], "--top-p"),
    (["generate", "   "], "prompt is empty"),
    (["understand", "only-a-question"], "at least one image"),
    (["understand", "missing.png", "What is it?"], "does not exist"),
    (["generate", "a cat", "--device", "cuda:0"], "no CUDA GPU"),
    (["generate", "a cat", "--dtype", "int8"], "--dtype"),
    (["models", "create-tiny", "llama", "--out", "x"], "no tiny builder"),
    (["download", "janus-pro-1b"], "HF_HUB_OFFLINE"),
])
def test_bad_input_is_one_line_nonzero(args, expected, tmp_path):
    result = run_console_script(*args, env={"HF_HOME": str(tmp_path / "hf")})
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0] and "Traceback" not in result.stderr


def test_unreadable_image(tmp_path, tiny_janus_dir):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    result = run_console_script("understand", str(broken), "What?", "--model", str(tiny_janus_dir))
    assert result.returncode != 0 and "cannot read image" in result.stderr


def test_debug_shows_traceback(tmp_path):
    result = run_console_script("--debug", "generate", "a cat", "--model", "janus-pro-2b")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_create_tiny_refuses_non_empty_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    result = run_console_script("models", "create-tiny", "janus", "--out", str(tmp_path))
    assert result.returncode != 0 and "not empty" in result.stderr


def test_create_tiny_janus_loads_for_generation(tmp_path):
    out = tmp_path / "tiny"
    result = run_console_script("models", "create-tiny", "janus", "--out", str(out))
    assert result.returncode == 0, result.stderr
    result = run_console_script("generate", "a red circle", "--model", str(out), "-n", "1", "--out", str(tmp_path / "img"))
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "img" / "00000.png").size[0] > 0


def test_prompts_generate_and_check(tmp_path):
    out = tmp_path / "prompts.jsonl"
    result = run_console_script("prompts", "generate", "--out", str(out), "--num", "30", "--seed", "1", "--tag", "position=2",
                                "--tag", "counting")
    assert result.returncode == 0, result.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 30 and all(json.loads(line)["tag"] in ("position", "counting") for line in lines)
    assert run_console_script("prompts", "check", str(out)).returncode == 0
    with out.open("a") as handle:
        handle.write("{not json\n")
    result = run_console_script("prompts", "check", str(out))
    assert result.returncode != 0 and ":31:" in result.stderr


def test_prompts_check_rejects_geneval_prompts():
    from unirl_cli.data.prompts import geneval_test_records  # noqa: F401 - the packaged file exists

    import unirl_cli

    path = f"{unirl_cli.__path__[0]}/data/geneval/evaluation_metadata.jsonl"
    result = run_console_script("prompts", "check", path)
    assert result.returncode != 0 and "GenEval test prompts" in result.stderr


def test_generate_and_understand_on_tiny_showo(tiny_showo_dir, tmp_path):
    out = tmp_path / "showo"
    result = run_console_script("generate", "a photo of a cat", "--model", str(tiny_showo_dir), "-n", "2",
                                "--steps", "4", "--out", str(out))
    assert result.returncode == 0, result.stderr
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["model"]["family"] == "showo" and metadata["sampling"]["num_steps"] == 4
    result = run_console_script("understand", str(out / "00000.png"), "What is the main item in this image?",
                                "--model", str(tiny_showo_dir), "--max-new-tokens", "3")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1
