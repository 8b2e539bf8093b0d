"""`unirl eval geneval` configuration: one dataclass tree, filled by a YAML recipe and `key=value` overrides.

Every GenEval constant is a default here, with the line of djghosh13/geneval `evaluation/evaluate_images.py`
it comes from, so a run can reproduce the official numbers or deliberately deviate (and record that it did).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from unirl_cli.config import SamplingConfig, option, section

DEFAULT_MODEL = "janus"


@dataclass
class GenevalThresholds:
    """Detection cut-offs of the scoring rules (GenEval's `--options`)."""

    threshold: float = option(0.3, "keep detections scoring strictly above this (evaluate_images.py L233, 'threshold')")
    counting_threshold: float = option(0.9, "the cut-off for 'counting' prompts instead (L230, 'counting_threshold')")
    max_objects: int = option(16, "keep at most this many detections per class, best first (L234, 'max_objects')")
    max_overlap: float = option(1.0, "per-class NMS IoU cut-off; 1.0 disables NMS as GenEval does (L239-242)")
    position_threshold: float = option(0.1, "margin, as a fraction of both objects' sizes, of the position rule (L147)")

    def __post_init__(self) -> None:
        for name in ("threshold", "counting_threshold"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.max_objects < 1:
            raise ValueError(f"max_objects must be >= 1, got {self.max_objects}")
        if not 0.0 < self.max_overlap <= 1.0:
            raise ValueError(f"max_overlap must be in (0, 1], got {self.max_overlap}")
        if self.position_threshold < 0:
            raise ValueError(f"position_threshold must be >= 0, got {self.position_threshold}")

    def for_tag(self, tag: str) -> float:
        """The score cut-off used for a prompt of `tag`."""
        return self.counting_threshold if tag == "counting" else self.threshold


@dataclass
class EvalGenevalConfig:
    """Generate GenEval's images with a model, then score them with the detector and colour classifier."""

    model: str = option(DEFAULT_MODEL, "registry name, hub id or local folder of the model to evaluate")
    out_dir: Optional[str] = option(None, "run folder: <index:05d>/ image folders, results.jsonl, summary.json, chart "
                                    "(default: the --images folder, else outputs/geneval/<model>)")
    images_dir: Optional[str] = option(None, "score this existing image folder instead of generating (GenEval layout)")
    suite: str = option("geneval", "prompt suite and its detector: 'geneval' (553 prompts, Mask2Former + CLIP) or 'shapes' (the shapes world)")
    images_per_prompt: int = option(4, "images generated per prompt (GenEval: 4, generation/diffusers_generate.py)")
    seed: int = option(42, "base seed (GenEval: 42); image k of prompt i uses a seed derived from (seed, i, k)")
    batch_size: int = option(8, "images generated per forward pass (prompts are batched together)")
    eval_batch_size: int = option(4, "images per detector forward pass")
    sampling: SamplingConfig = section(SamplingConfig, "image sampling; unset values take the family's published default")
    understanding: bool = option(False, "also ask the model each prompt's question about its own images (imbalance)")
    answer_max_new_tokens: int = option(48, "longest answer generated for --understanding (greedy)")
    thresholds: GenevalThresholds = section(GenevalThresholds, "GenEval's scoring cut-offs")
    device: str = option("auto", "device of the generating model: auto, cpu, cuda, cuda:N, mps")
    dtype: str = option("auto", "dtype of the generating model: auto, float32, bfloat16, float16")
    eval_device: str = option("auto", "device of the detector and CLIP: auto, cpu, cuda, cuda:N")
    detector_path: Optional[str] = option(None, "folder with the Mask2Former detector (default: the downloaded geneval-detector)")
    clip_path: Optional[str] = option(None, "folder with CLIP ViT-L/14 (default: the downloaded geneval-clip)")
    limit: Optional[int] = option(None, "only the first N prompts (quick checks; scores are then not comparable)")
    stage: Literal["all", "generate", "evaluate"] = option("all", "run both stages, or only one of them")

    def __post_init__(self) -> None:
        for name in ("images_per_prompt", "batch_size", "eval_batch_size", "answer_max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1 (or unset for all prompts), got {self.limit}")
