"""The GenEval pipeline on tiny random Mask2Former and CLIP models: layout, resume, sharding, scoring, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from unirl_cli.cli import app
from unirl_cli.config import SamplingConfig
from unirl_cli.errors import UnirlError
from unirl_cli.eval.geneval.colors import load_color_classifier
from unirl_cli.eval.geneval.config import EvalGenevalConfig
from unirl_cli.eval.geneval.detector import load_detector
from unirl_cli.eval.geneval.evaluate import read_records
from unirl_cli.eval.geneval.generate import generate_prompt_images, image_seed, shard_indices
from unirl_cli.eval.geneval.layout import sample_path, scan_image_folder
from unirl_cli.eval.geneval.pipeline import evaluate_folder
from unirl_cli.eval.geneval.prompts import geneval_metadata, object_names
from unirl_cli.eval.geneval.reward import reward_from_judge
from unirl_cli.eval.geneval.suites import ModelJudge
from unirl_cli.eval.geneval.tiny_judge import build_tiny_clip, build_tiny_detector
from unirl_cli.models.base import ImageRollout, UnifiedModel

runner = CliRunner()
METADATA = geneval_metadata()  # prompts 0, 1, 2: a bench, a cow, a bicycle


class PaletteModel(UnifiedModel):
    """A stand-in generator: each image is noise drawn from its own seed; answers come from a script."""

    family = "palette"

    def __init__(self, fail_after_calls=None, answers=()):
        super().__init__()
        self.hf_model = torch.nn.Linear(1, 1)
        self.calls: list[list[str]] = []
        self.fail_after_calls = fail_after_calls
        self.answers = list(answers)

    def default_sampling(self):
        return SamplingConfig(guidance_scale=5.0, temperature=1.0, num_steps=1)

    def generate_images(self, prompts, seeds, sampling=None):
        if self.fail_after_calls is not None and len(self.calls) >= self.fail_after_calls:
            raise KeyboardInterrupt("killed")
        self.calls.append(list(prompts))
        tokens = torch.stack([torch.randint(0, 256, (16 * 16 * 3,), generator=torch.Generator().manual_seed(s))
                              for s in seeds])
        return ImageRollout(list(prompts), list(seeds), tokens, torch.zeros(len(seeds), 1), 5.0, 1.0)

    def decode_images(self, image_tokens):
        return [Image.fromarray(t.view(16, 16, 3).numpy().astype(np.uint8)) for t in image_tokens]

    def answer_questions(self, images, questions, max_new_tokens=32, greedy=True, temperature=1.0, seeds=None):
        taken, self.answers = self.answers[: len(images)], self.answers[len(images):]
        return taken


@pytest.fixture(scope="module")
def judge_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("judge")
    detector = build_tiny_detector(root / "detector", favourite_class=object_names().index("bench"))
    return detector, build_tiny_clip(root / "clip")


@pytest.fixture(scope="module")
def small_judge(judge_dirs):
    """The tiny judge at a 128 px detector input (GenEval's 800 px costs seconds per image on CPU)."""
    detector_dir, clip_dir = judge_dirs
    detector = load_detector(str(detector_dir), object_names(), torch.device("cpu"), 4, 0.3, input_scale=(128, 128))
    return ModelJudge(detector, load_color_classifier(str(clip_dir), torch.device("cpu")))


def generate(out, model=None, limit=3, images=2, batch_size=3, indices=None):
    model = model or PaletteModel()
    written = generate_prompt_images(model, METADATA[:limit], out, indices=indices or range(limit),
                                     images_per_prompt=images, seed=42, batch_size=batch_size)
    return model, written


def folder_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


# ---- generation stage ------------------------------------------------------------------------------------------


def test_generation_writes_genevals_layout_batched_across_prompts(tmp_path):
    model, written = generate(tmp_path)
    assert written == 6 and len(model.calls) == 2
    assert model.calls[0] == ["a photo of a bench", "a photo of a bench", "a photo of a cow"]
    for index in range(3):
        folder = tmp_path / f"{index:05d}"
        assert json.load(open(folder / "metadata.jsonl")) == METADATA[index]
        assert sorted(p.name for p in (folder / "samples").iterdir()) == ["00000.png", "00001.png"]
    assert image_seed(42, 0, 1) != image_seed(42, 1, 0) and image_seed(42, 0, 1) == image_seed(42, 0, 1)


def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path):
    _, _ = generate(tmp_path / "whole", batch_size=4)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "killed", PaletteModel(fail_after_calls=1), batch_size=4)
    stale = tmp_path / "killed" / "00001" / "samples" / ".00000.x1y2.tmp.png"
    stale.write_bytes(b"half a png")  # what a SIGKILL during a save leaves
    assert scan_image_folder(tmp_path / "killed", limit=2)[1].images == (sample_path(tmp_path / "killed", 1, 0),
                                                                          sample_path(tmp_path / "killed", 1, 1))
    model, written = generate(tmp_path / "killed", batch_size=4)
    assert written == 2 and not stale.exists()
    assert folder_bytes(tmp_path / "killed") == folder_bytes(tmp_path / "whole")
    assert generate(tmp_path / "killed")[1] == 0  # complete prompts are skipped


def test_shards_cover_each_prompt_once_and_match_a_single_process(tmp_path):
    assert shard_indices(5, 0, 2) == [0, 2, 4] and shard_indices(5, 1, 2) == [1, 3]
    rank0, _ = generate(tmp_path / "sharded", indices=shard_indices(3, 0, 2))
    rank1, _ = generate(tmp_path / "sharded", indices=shard_indices(3, 1, 2))
    prompts = [p for model in (rank0, rank1) for call in model.calls for p in call]
    assert sorted(prompts) == sorted(m["prompt"] for m in METADATA[:3] for _ in range(2))
    generate(tmp_path / "single", batch_size=1)
    assert folder_bytes(tmp_path / "sharded") == folder_bytes(tmp_path / "single")


# ---- evaluation stage ------------------------------------------------------------------------------------------


def test_evaluate_folder_scores_and_summarises_like_geneval(tmp_path, small_judge):
    generate(tmp_path)
    config = EvalGenevalConfig(out_dir=str(tmp_path))
    (tmp_path / "generation.json").write_text(json.dumps({"model": "m", "images_per_prompt": 3}))
    with pytest.raises(UnirlError, match="has 2 of 3 images"):  # an interrupted generation is not scored
        evaluate_folder(config, tmp_path, tmp_path, judge=small_judge)
    (tmp_path / "generation.json").write_text(json.dumps({"model": "m", "images_per_prompt": 2}))
    summary = evaluate_folder(config, tmp_path, tmp_path, judge=small_judge)
    records = read_records(tmp_path / "results.jsonl")
    assert [Path(r["filename"]).relative_to(tmp_path).as_posix() for r in records][:2] == \
        ["00000/samples/00000.png", "00000/samples/00001.png"]
    assert set(records[0]) == {"filename", "tag", "prompt", "correct", "reason", "metadata", "details"}
    # The tiny detector sees benches everywhere: the bench prompt passes, the cow prompt does not.
    assert [r["correct"] for r in records] == [True, True, False, False, False, False]
    assert records[2]["reason"] == "expected cow>=1, found 0"
    details = json.loads(records[0]["details"])
    assert list(details) == ["bench"] and 1 <= len(details["bench"]) <= 16
    assert all(len(row) == 5 and row[4] > 0.3 for row in details["bench"])
    assert json.loads(records[0]["metadata"]) == METADATA[0]
    assert summary["tasks"]["single_object"] == {"score": pytest.approx(1 / 3), "correct": 2, "images": 6}
    # summary_scores.py's logic on the written file: mean of `correct` per tag, then the plain mean of those.
    per_tag: dict[str, list[bool]] = {}
    for line in (tmp_path / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        per_tag.setdefault(record["tag"], []).append(record["correct"])
    official_overall = float(np.mean([np.mean(values) for values in per_tag.values()]))
    assert json.loads((tmp_path / "summary.json").read_text())["overall"] == pytest.approx(official_overall)
    assert (tmp_path / "geneval.png").stat().st_size > 1000


class CountingJudge:
    """Wraps a judge; counts the images it detects on and dies after `fail_after` calls (a simulated kill)."""

    def __init__(self, judge, fail_after=None):
        self.judge, self.fail_after, self.calls, self.images = judge, fail_after, 0, 0

    def detect(self, images):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.calls, self.images = self.calls + 1, self.images + len(images)
        return self.judge.detect(images)

    def label_colors(self, items):
        return self.judge.label_colors(items)


class FakeState:
    """accelerate's PartialState as seen by one process of a `world`-process run (ranks run one after another)."""

    def __init__(self, rank, world):
        self.process_index, self.num_processes, self.is_main_process = rank, world, rank == 0

    def wait_for_everyone(self):
        pass


def test_scoring_resumes_after_a_kill_and_shards_by_prompt(tmp_path, small_judge):
    generate(tmp_path / "images", limit=3, images=2)
    config = EvalGenevalConfig(eval_batch_size=2)
    whole = evaluate_folder(config, tmp_path / "images", tmp_path / "whole", judge=small_judge)
    with pytest.raises(KeyboardInterrupt):
        evaluate_folder(config, tmp_path / "images", tmp_path / "killed", judge=CountingJudge(small_judge, 2))
    resumed_judge = CountingJudge(small_judge)
    resumed = evaluate_folder(config, tmp_path / "images", tmp_path / "killed", judge=resumed_judge)
    assert resumed_judge.images == 2 and resumed["tasks"] == whole["tasks"]
    assert read_records(tmp_path / "killed" / "results.jsonl") == read_records(tmp_path / "whole" / "results.jsonl")
    assert not list((tmp_path / "killed").glob(".results.partial.*"))
    # Two processes: rank 1 scores prompt 1, rank 0 prompts 0 and 2 and then merges.
    rank1 = CountingJudge(small_judge)
    assert evaluate_folder(config, tmp_path / "images", tmp_path / "sharded", judge=rank1, state=FakeState(1, 2)) is None
    rank0 = CountingJudge(small_judge)
    sharded = evaluate_folder(config, tmp_path / "images", tmp_path / "sharded", judge=rank0, state=FakeState(0, 2))
    assert (rank0.images, rank1.images) == (4, 2) and sharded["tasks"] == whole["tasks"]
    assert read_records(tmp_path / "sharded" / "results.jsonl") == read_records(tmp_path / "whole" / "results.jsonl")


def test_understanding_and_imbalance(tmp_path, small_judge):
    generate(tmp_path)
    model = PaletteModel(answers=["bench", "a dog", "cow", "a cow", "bicycle", "bicycle"])
    config = EvalGenevalConfig(understanding=True)
    summary = evaluate_folder(config, tmp_path, tmp_path, model=model, judge=small_judge)
    overall = summary["understanding"]["overall"]
    # GenEval: [1, 1, 0, 0, 0, 0]; answers: [1, 0, 1, 1, 1, 1].
    assert overall["imbalance"] == pytest.approx(1 / 2) and overall["reverse_imbalance"] == pytest.approx(4 / 5)
    assert overall["understanding_accuracy"] == pytest.approx(5 / 6)
    answers = read_records(tmp_path / "understanding.jsonl")
    assert answers[0]["question"] == "What is the main item in this image?" and answers[1]["correct"] is False


def test_detector_reward(small_judge):
    images = [Image.new("RGB", (48, 48), (90, 60, 30))] * 2
    reward = reward_from_judge(small_judge)
    assert reward(images, [METADATA[0], METADATA[1]]) == [1.0, 0.0]
    two = {"tag": "two_object", "prompt": "p", "include": [{"class": "bench", "count": 1}, {"class": "cow", "count": 1}]}
    assert reward_from_judge(small_judge, partial=True)(images[:1], [two]) == [0.5]


def test_detector_reward_loads_through_the_training_entry_point(judge_dirs):
    from unirl_cli.eval.geneval.reward import load_image_scorer

    detector_dir, clip_dir = judge_dirs
    reward = load_image_scorer(detector_path=str(detector_dir), clip_path=str(clip_dir), device="cpu")
    assert reward([Image.new("RGB", (32, 32))], [METADATA[0]]) == [1.0] and reward([], []) == []


# ---- the command line ------------------------------------------------------------------------------------------


def invoke(*args):
    return runner.invoke(app, ["eval", "geneval", *map(str, args)])


def test_cli_scores_a_folder_and_compares_runs(tmp_path, judge_dirs):
    generate(tmp_path / "run", limit=2, images=1)
    detector_dir, clip_dir = judge_dirs
    result = invoke("--images", tmp_path / "run", "--out", tmp_path / "scored", "--detector-path", detector_dir,
                    "--clip-path", clip_dir, "eval_batch_size=2")
    assert result.exit_code == 0, result.output
    assert "single object" in result.output and (tmp_path / "scored" / "results.jsonl").is_file()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "summary.json").write_text(json.dumps({"overall": 0.25, "tasks": {
        "single_object": {"score": 0.25, "correct": 1, "images": 4}}}))
    result = invoke("--compare", tmp_path / "scored", tmp_path / "other")
    assert result.exit_code == 0 and "delta" in result.output and "overall" in result.output


def _folder(tmp_path, metadata_text='{"tag": "single_object", "prompt": "p", "include": []}', image="00000.png"):
    folder = tmp_path / "images" / "00000"
    (folder / "samples").mkdir(parents=True)
    if metadata_text is not None:
        (folder / "metadata.jsonl").write_text(metadata_text)
    if image:
        Image.new("RGB", (8, 8)).save(folder / "samples" / image)
    return tmp_path / "images"


@pytest.mark.parametrize("setup, expected", [
    (lambda t: _folder(t, metadata_text=None), "has no metadata.jsonl"),
    (lambda t: _folder(t, image="00000.jpg"), "non-PNG images (00000.jpg)"),
    (lambda t: _folder(t, metadata_text='{"tag": "colors"}\n{"tag": "colors"}'), "is not one JSON object"),
    (lambda t: _folder(t, metadata_text='[1, 2]'), "must hold one JSON object"),
    (lambda t: _folder(t, image=None), "holds no images named like 00000.png"),
    (lambda t: (t / "empty").mkdir() or t / "empty", "has no prompt folders"),
])
def test_bad_image_folders_are_clear_errors(tmp_path, judge_dirs, setup, expected):
    detector_dir, clip_dir = judge_dirs
    result = invoke("--images", setup(tmp_path), "--detector-path", detector_dir, "--clip-path", clip_dir)
    assert isinstance(result.exception, UnirlError) and expected in str(result.exception), result.output


def test_config_errors_and_missing_weights(tmp_path, judge_dirs):
    result = invoke("--show-config", "thresholds.counting_threshold=0.8", "--limit", "5")
    assert result.exit_code == 0 and "counting_threshold: 0.8" in result.output and "limit: 5" in result.output
    result = invoke("--images", tmp_path, "thresholds.treshold=0.5")
    assert isinstance(result.exception, UnirlError) and "did you mean 'thresholds.threshold'" in str(result.exception)
    result = invoke("--images", tmp_path, "--detector-path", tmp_path)
    assert isinstance(result.exception, UnirlError) and "no config.json" in str(result.exception)
    from unirl_cli.models.hub import is_downloaded
    from unirl_cli.models.registry import lookup_spec

    if is_downloaded(lookup_spec("geneval-detector")):
        pytest.skip("the real detector is downloaded here")
    result = invoke("--images", _folder(tmp_path))
    assert isinstance(result.exception, UnirlError) and "unirl download geneval-models" in str(result.exception)


# ---- end to end with a real (tiny) model ---------------------------------------------------------------------


def test_cli_end_to_end_with_tiny_janus_resumes(tmp_path, tiny_janus_dir, judge_dirs):
    detector_dir, clip_dir = judge_dirs
    out = tmp_path / "run"
    args = ["--model", tiny_janus_dir, "--out", out, "--limit", "2", "-n", "1", "--detector-path", detector_dir,
            "--clip-path", clip_dir, "--understanding", "batch_size=3", "answer_max_new_tokens=4"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    records = read_records(out / "results.jsonl")
    assert len(records) == 2 and {r["prompt"] for r in records} == {"a photo of a bench", "a photo of a cow"}
    settings = json.loads((out / "generation.json").read_text())
    assert settings["family"] == "janus" and settings["sampling"]["guidance_scale"] is not None
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == str(tiny_janus_dir) and "understanding" in summary
    assert len(read_records(out / "understanding.jsonl")) == 2
    with Image.open(sample_path(out, 1, 0)) as image:
        assert image.size == (64, 64)
    # A kill mid-run loses at most the images not yet renamed into place: delete one, rerun, it comes back.
    sample_path(out, 1, 0).unlink()
    result = invoke(*args[:-3])
    assert result.exit_code == 0, result.output
    assert sample_path(out, 1, 0).is_file() and len(read_records(out / "results.jsonl")) == 2
    sample_path(out, 0, 0).unlink()
    result = invoke(*args[:-3], "stage=evaluate")
    assert isinstance(result.exception, UnirlError) and "rerun that command" in str(result.exception)
    result = invoke(*args[:-3], "seed=7")
    assert isinstance(result.exception, UnirlError) and "was generated with seed=42" in str(result.exception)
