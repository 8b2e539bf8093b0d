"""User mistakes, as a user would make them: each is one line, exit code 2, no traceback, before any model loads,
and the working folder is left exactly as it was (nothing half-written, no new folder)."""

from __future__ import annotations

import json
import os
import sys

import pytest

from unirl_cli.cli import app

TINY = "TINY"  # replaced by the tiny Janus folder
MINI_RUN = "run"  # a folder holding a finished run (made by the fixture)

# (command line, text the one error line must contain)
MISTAKES = [
    # usage errors: typer/click's own checks, as one line
    ("traing grpo", "No such command 'traing'. Did you mean 'train'?"),
    ("train grpoo", "No such command 'grpoo'"),
    ("generate", "Missing argument 'prompt'"),
    ("generate cat -n abc", "Invalid value for '--num-images'"),
    ("train grpo --ouy x", "No such option: --ouy"),
    ("eval geneval --limt 3", "No such option: --limt"),
    ("models create-tiny", "Missing argument 'family'"),
    # generate
    ("generate '  '", "the prompt is empty"),
    ("generate cat -n 0", "--num-images must be > 0"),
    ("generate cat --batch-size 0", "--batch-size must be > 0"),
    ("generate cat --temperature 0", "--temperature must be > 0"),
    ("generate cat --sampling-steps 0", "--sampling-steps must be > 0"),
    ("generate cat --guidance-scale -1", "--guidance-scale must be >= 0"),
    ("generate cat --top-p 0", "--top-p must be in (0, 1]"),
    ("generate cat --top-p 1.5", "--top-p must be in (0, 1]"),
    ("generate cat --top-k -3", "--top-k must be >= 0"),
    ("generate cat --model janus-pro-1bb", "did you mean 'janus-pro-1b'?"),
    ("generate cat --model ./no-such-folder", "model folder './no-such-folder' does not exist"),
    ("generate cat --model TINY --cfg 0.5", "guidance_scale 0.5 is below 1"),
    ("generate cat --model TINY --out afile", "--out 'afile' is a file, not a folder"),
    ("generate cat --model TINY --out afile/sub", "is under 'afile', which is a file"),
    ("generate cat --model TINY --device tpu9", "--device 'tpu9' is not a device name"),
    ("generate cat --model TINY --device cuda", "CUDA"),
    ("generate cat --model broken", "is damaged"),
    ("generate cat --model empty-weights", "is empty"),
    ("generate cat --model no-tokenizer", "has no tokenizer file"),
    ("generate cat --model not-a-model", "has no config.json"),
    # understand
    ("understand cat.png", "give at least one image and a question"),
    ("understand missing.png 'What is it?'", "image 'missing.png' does not exist"),
    ("understand afile 'What is it?'", "cannot read image 'afile'"),
    ("understand image.png '  '", "the question is empty"),
    ("understand 'What is it?' image.png", "is an image; put the question last"),
    ("understand image.png 'What?' --max-new-tokens 0", "--max-new-tokens must be > 0"),
    # train
    ("train grpo --model TINY --out r group_size=1", "group_size must be >= 2"),
    ("train grpo --model TINY --out r grpo.betta=0.1", "did you mean 'grpo.beta'"),
    ("train grpo --model TINY --out r grpo.loss_type=ppo", "must be one of"),
    ("train grpo --model TINY --out r grpo.beta=abc", "grpo.beta: expected a number, got 'abc'"),
    ("train grpo --model TINY --out r steps", "override 'steps' is not key=value"),
    ("train grpo --model TINY --out r --steps 0", "--steps must be > 0"),
    ("train grpo --model TINY --out r optim.lr=0", "optim.lr must be > 0"),
    ("train grpo --model TINY --out r micro_batch_size=0", "micro_batch_size must be >= 1"),
    ("train grpo --model TINY --out r rollout.guidance_scale=-1", "rollout.guidance_scale must be >= 0"),
    ("train grpo --model TINY --out r rollout.guidance_scale=0.5", "guidance_scale 0.5 is below 1"),
    ("train grpo --model TINY --out r rollout.masked_transition=remasked", "masked_transition applies to masked generators"),
    ("train grpo --model TINY --out r rollout.masked_transition=all", "must be one of 'committed', 'remasked'"),
    ("train grpo --model TINY --out r log.report_to=neptune", "must be one of"),
    ("train sft --model TINY --out r sft.gumbel_tau=0", "sft.gumbel_tau must be > 0"),
    ("train sft --model TINY --out r sft.mode=rl", "must be one of"),
    ("train grpo --model TINY --out r prompts.file=missing.jsonl", "prompt file missing.jsonl does not exist"),
    ("train grpo --model TINY --out r --config missing.yaml", "is neither a file nor a shipped train config"),
    ("train grpo --model TINY --out r --config mini-grpoo", "did you mean 'mini-grpo'?"),
    ("train grpo --model TINY --out afile", "--out 'afile' is a file, not a folder"),
    ("train grpo --model TINY --out run", "already holds a training run (last checkpoint step-000001); pass --resume"),
    ("train grpo --model TINY --out empty-dir --resume", "no complete checkpoint to resume from"),
    ("train grpo --model TINY --out run --resume --overwrite", "pass one of them"),
    ("train grpo --model janus-pro-9b --out r", "is not known"),
    # eval
    ("eval geneval --suite cocoa --model TINY", "suite 'cocoa' is not known"),
    ("eval geneval --images missing-folder", "is not a folder"),
    ("eval geneval --model TINY --out afile", "--out 'afile' is a file, not a folder"),
    ("eval geneval --model TINY --config missing.yaml", "is neither a file nor a shipped eval config"),
    ("eval geneval --model TINY sampling.guidance_scale=abc", "expected"),
    # models, configs, download, prompts
    ("models create-tiny llama --out t", "no tiny builder for 'llama'"),
    ("models create-tiny janus --out run", "is not empty"),
    ("models convert-janus missing --out c", "has no config.json"),
    ("models convert-janus TINY --out c --chat-format pro", "--chat-format 'pro' is not known"),
    ("configs path mini-grpoo", "did you mean 'mini-grpo'?"),
    ("download janus-pro-1bb", "did you mean 'janus-pro-1b'?"),
    ("download janus-pro-1b --out afile", "--out 'afile' is a file, not a folder"),
    ("prompts generate --out prompts-folder --num 10", "is a folder; pass a file name"),
    ("prompts generate --out p.jsonl --num 0", "--num must be > 0"),
    ("prompts generate --out p.jsonl --tag position=x", "must be a number"),
    ("prompts check missing.jsonl", "does not exist"),
    # the shapes world
    ("world render 'a photo of a cat' --out s.png", "is not a shapes-world prompt"),
    ("world render 'a photo of a red circle' --out prompts-folder", "is a folder; pass a file name"),
    ("world detect missing.png", "image 'missing.png' does not exist"),
    ("world improve --method ppo", "--method 'ppo' is not one of grpo, sft"),
    ("world improve --threads 0", "--threads must be > 0"),
    ("world improve --steps 0", "--steps must be > 0"),
    ("world improve --out afile", "--out 'afile' is a file, not a folder"),
    ("world improve --config mini-grpoo", "did you mean 'mini-grpo'?"),
    ("world improve --model mini-shwo", "--model 'mini-shwo' is neither a shapes-world model (mini, mini-showo)"),
    ("world pretrain --out p --minutes 0", "--minutes must be > 0"),
    ("world pretrain --out p --family dalle", "--family must be one of janus, showo, got 'dalle'"),
    ("world pretrain --out p --decoder-minutes 2", "--decoder-minutes is a stage of mini-showo (--family showo)"),
    ("world decoder --out p --model mini", "'mini' is a janus model; this stage trains a Show-o's MAGVIT decoder"),
    ("world decoder --out p --minutes 0", "--minutes must be > 0"),
    ("world distill --out p --model mini", "'mini' is a janus model; this stage trains a Show-o's conditional branch"),
    ("world distill --out p --guidance 0", "guidance 0.0 has nothing to distil; pass the teacher's w > 0"),
    ("world distill --out p --minutes 0", "--minutes must be > 0"),
    ("world pretrain --out p --num-scenes 3", "--num-scenes must be >= 16"),
    ("world pretrain --out run", "is not empty"),
    ("world read --out p --scope galaxy", "scope"),
    ("world read --out p --weights position", "is not tag=number"),
    ("world read --out p --answer-order random", "answer"),
    ("world read --out run", "is not empty"),
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_janus_dir):
    """A working folder with the things the mistakes point at: a file, an image, a finished run, broken models."""
    import shutil

    from PIL import Image

    root = tmp_path_factory.mktemp("mistakes")
    (root / "afile").write_text("not an image, not a folder")
    Image.new("RGB", (64, 64), (200, 30, 30)).save(root / "image.png")
    (root / "empty-dir").mkdir()
    (root / "prompts-folder").mkdir()
    run = root / MINI_RUN
    (run / "checkpoints" / "step-000001" / "training_state").mkdir(parents=True)
    (run / "checkpoints" / "step-000001" / "training_state" / "trainer_state.json").write_text(json.dumps({"step": 1}))
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    for name in ("broken", "empty-weights", "no-tokenizer"):
        shutil.copytree(tiny_janus_dir, root / name)
    with open(root / "broken" / "model.safetensors", "r+b") as handle:
        handle.truncate(100)
    (root / "empty-weights" / "model.safetensors").write_bytes(b"")
    (root / "no-tokenizer" / "tokenizer.json").unlink()
    (root / "not-a-model").mkdir()
    return root


def snapshot(root) -> dict[str, float]:
    return {str(path.relative_to(root)): path.stat().st_mtime for path in sorted(root.rglob("*"))}


@pytest.mark.parametrize("line, expected", MISTAKES, ids=[line for line, _ in MISTAKES])
def test_a_mistake_is_one_line_exit_2_and_changes_nothing(line, expected, workdir, tiny_janus_dir, monkeypatch,
                                                          capsys):
    import shlex

    monkeypatch.chdir(workdir)
    monkeypatch.setenv("COLUMNS", "1000")  # one line must not be wrapped by the terminal width
    monkeypatch.setitem(sys.modules, "peft", None)
    args = [str(tiny_janus_dir) if word == TINY else word for word in shlex.split(line)]
    before = snapshot(workdir)
    with pytest.raises(SystemExit) as exited:
        app(args=args, prog_name="unirl")
    captured = capsys.readouterr()
    lines = [text for text in (captured.out + captured.err).splitlines() if text.strip()]
    assert exited.value.code == 2, captured.out + captured.err
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert expected in lines[0], lines[0]
    assert "Traceback" not in lines[0]
    assert snapshot(workdir) == before


def test_there_are_at_least_fifty_mistakes():
    assert len(MISTAKES) >= 50 and len({line for line, _ in MISTAKES}) == len(MISTAKES)


def test_debug_shows_the_traceback(workdir, monkeypatch):
    from unirl_cli.errors import UnirlError

    monkeypatch.chdir(workdir)
    with pytest.raises(UnirlError):
        app(args=["--debug", "generate", "  "], prog_name="unirl")
    from unirl_cli.cli.common import state

    state.debug = False


def test_help_still_exits_0(capsys):
    assert app(args=["generate", "--help"], prog_name="unirl") in (None, 0)
    assert "--out" in capsys.readouterr().out
    os.environ.pop("UNIRL_TEST_NOTHING", None)


def test_flags_win_over_the_same_key_as_key_value(tmp_path, monkeypatch, capsys):
    """One precedence rule for every verb with a config: an explicit flag beats key=value for the same key."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "1000")
    app(args=["train", "grpo", "--steps", "5", "steps=10", "--seed", "3", "seed=4", "--show-config"],
        prog_name="unirl")
    shown = capsys.readouterr().out
    assert "steps: 5" in shown and "seed: 3" in shown
    app(args=["eval", "geneval", "--limit", "5", "limit=10", "--seed", "1", "seed=2", "--show-config"],
        prog_name="unirl")
    shown = capsys.readouterr().out
    assert "limit: 5" in shown and "seed: 1" in shown
