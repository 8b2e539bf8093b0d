"""A missing optional package (pip extra) stops `unirl train` before any compute, in one line naming the fix."""

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from unirl_cli.cli import app
from unirl_cli.errors import UnirlError
from unirl_cli.extras import EXTRAS, extra_installed, missing_training_extras

SMALL = ["prompts.num_generated=8", "prompts_per_step=2", "group_size=2", "log.live=false"]

# extra -> (overrides that need it, environment that needs it)
CASES = {
    "lora": (["lora.r=4"], {}),
    "deepspeed": ([], {"ACCELERATE_USE_DEEPSPEED": "true"}),
    "wandb": (["log.report_to=wandb"], {}),
    "tensorboard": (["log.report_to=tensorboard"], {}),
    "trackio": (["log.report_to=trackio"], {}),
}


def hide_extra(monkeypatch, extra: str) -> None:
    """Make every package that serves `extra` unimportable, as in an environment without it."""
    for name in EXTRAS[extra][0]:
        monkeypatch.setitem(sys.modules, name, None)


def test_every_extra_in_pyproject_has_a_case():
    import tomllib
    from pathlib import Path

    declared = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(EXTRAS) <= set(declared) and set(CASES) == set(EXTRAS)
    for extra, (packages, _) in EXTRAS.items():
        assert any(requirement.startswith(packages[0]) for requirement in declared[extra]), extra


@pytest.mark.parametrize("extra", sorted(CASES))
def test_training_without_an_extra_fails_in_one_line_before_loading(extra, tiny_janus_dir, tmp_path, monkeypatch):
    overrides, environment = CASES[extra]
    hide_extra(monkeypatch, extra)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "grpo", "--model", str(tiny_janus_dir), "--steps", "1",
                                      "--output-dir", str(run_dir), *SMALL, *overrides])
    assert isinstance(result.exception, UnirlError), (result.exception, result.output)
    message = str(result.exception)
    assert "\n" not in message
    assert f"'{EXTRAS[extra][0][0]}'" in message and f"pip install 'unirl[{extra}]'" in message
    assert not run_dir.exists()


def test_installed_extras_are_not_reported(monkeypatch):
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    assert missing_training_extras(0, "none", uses_deepspeed=False) == []
    hide_extra(monkeypatch, "wandb")
    assert missing_training_extras(0, "wandb", uses_deepspeed=False) == ["wandb"]
    assert not extra_installed("wandb")


def test_the_command_exits_2_with_one_line_and_no_traceback(tiny_janus_dir, tmp_path):
    # A real process, so the exit code and the printed text are what a user sees.
    code = ("import sys; sys.modules['peft'] = None; from unirl_cli.cli import app; "
            "sys.argv = ['unirl', *sys.argv[1:]]; app()")
    command = [sys.executable, "-c", code, "train", "sft", "--model", str(tiny_janus_dir), "--steps", "1",
               "--output-dir", str(tmp_path / "run"), "lora.r=4", *SMALL]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "COLUMNS": "400"})
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(lines) == 1 and "pip install 'unirl[lora]'" in lines[0] and "Traceback" not in lines[0]
    assert not (tmp_path / "run").exists()
