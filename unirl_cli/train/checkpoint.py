"""Checkpoints: a model folder `unirl generate --model CKPT` loads, plus everything `--resume` needs.

Layout of `<output_dir>/checkpoints/step-000040/`:
    config.json, model.safetensors, ...   the policy (LoRA merged), in the family's saved layout
    training_state/trainer_state.json     step, prompt cursor, run config, base model, world size
    training_state/optimizer*.pt, scheduler.pt, rng_rank<r>.pt, [adapter.safetensors]
A checkpoint is written under a hidden temporary name and renamed when complete, so a run killed
mid-save or mid-step resumes from the last complete one. State files load with `weights_only=True`.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unirl_cli.errors import UnirlError
from unirl_cli.fileio import write_json_atomic
from unirl_cli.models.base import UnifiedModel
from unirl_cli.train.policy import merged_lora_copy, uses_lora

STATE_DIR = "training_state"
TRAINER_STATE = "trainer_state.json"
_NAME = re.compile(r"^step-(\d{6,})$")


# What a run writes into its folder; any of the first three means a run was started there.
RUN_ENTRIES = ("config.yaml", "metrics.jsonl", "checkpoints", "samples", "plots")


def holds_run(output_dir: str | Path) -> bool:
    """Whether `output_dir` holds a started or finished training run."""
    return any((Path(output_dir) / name).exists() for name in RUN_ENTRIES[:3])


def check_resume_or_overwrite(resuming: bool, overwrite: bool) -> None:
    """Resuming continues a run and overwriting replaces it: refuse both at once."""
    if resuming and overwrite:
        raise UnirlError("--resume continues the run in --out and --overwrite replaces it; pass one of them")


def check_run_folder(output_dir: str | Path, resuming: bool, overwrite: bool, can_resume: bool = True) -> None:
    """Refuse, in one line and before any compute, to start a run over another unless told to replace it
    (`can_resume`: whether the command offers --resume)."""
    from unirl_cli.fileio import check_output_folder

    check_output_folder(output_dir)
    check_resume_or_overwrite(resuming, overwrite)
    if not resuming and not overwrite and holds_run(output_dir):
        found = list_checkpoints(output_dir)
        state = f"last checkpoint {found[-1].name}" if found else "no checkpoint yet"
        resume = "--resume to continue it, " if can_resume else ""
        raise UnirlError(f"'{output_dir}' already holds a training run ({state}); pass {resume}--overwrite to "
                         f"replace it, or another --out")


def clear_run(output_dir: str | Path, extra: tuple[str, ...] = ()) -> None:
    """Delete what an earlier run wrote into `output_dir` (RUN_ENTRIES and `extra`), nothing else."""
    for name in (*RUN_ENTRIES, *extra):
        target = Path(output_dir) / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def remove_failed_run(output_dir: str | Path) -> None:
    """Delete a run folder this command created when the run failed before any checkpoint or metrics row."""
    folder = Path(output_dir)
    metrics = folder / "metrics.jsonl"
    if not folder.is_dir() or list_checkpoints(folder) or (metrics.is_file() and metrics.read_text().strip()):
        return
    shutil.rmtree(folder, ignore_errors=True)


def checkpoints_root(output_dir: str | Path) -> Path:
    """The folder that holds a run's checkpoints."""
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = checkpoints_root(output_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _NAME.match(p.name) and (p / STATE_DIR / TRAINER_STATE).is_file()]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def resolve_resume_dir(resume: str, output_dir: str | Path) -> Path:
    """The checkpoint to resume from: `resume` itself, the latest in the run folder `resume`, or (empty) in `output_dir`."""
    target = Path(resume) if resume else Path(output_dir)
    if (target / STATE_DIR / TRAINER_STATE).is_file():
        return target
    found = list_checkpoints(target)
    if not found:
        raise UnirlError(f"no complete checkpoint to resume from in '{target}'; pass a run folder or a "
                         f"checkpoints/step-N folder written by `unirl train`")
    return found[-1]


def read_trainer_state(checkpoint: str | Path) -> dict:
    """The trainer_state.json of a checkpoint."""
    path = Path(checkpoint) / STATE_DIR / TRAINER_STATE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UnirlError(f"'{path}' cannot be read ({err}); the checkpoint is damaged, resume from an older one") from err


def _rng_state() -> dict[str, Any]:
    numpy_state = np.random.get_state()
    state = {"python": list(random.getstate()[1]), "python_gauss": random.getstate()[2],
             "numpy_keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
             "numpy_pos": numpy_state[2], "numpy_gauss": [numpy_state[3], numpy_state[4]],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate((3, tuple(state["python"]), state["python_gauss"]))
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_gauss"][0], state["numpy_gauss"][1]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_policy(policy: UnifiedModel, folder: Path) -> None:
    if uses_lora(policy):
        from peft import get_peft_model_state_dict
        from safetensors.torch import save_file

        adapter = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(policy.peft_model).items()}
        save_file(adapter, str(folder / STATE_DIR / "adapter.safetensors"))
        with merged_lora_copy(policy) as merged:
            merged.save(str(folder))
    else:
        policy.save(str(folder))


def save_checkpoint(accelerator, policy: UnifiedModel, optimizer, scheduler, trainer_state: dict,
                    output_dir: str | Path, keep_last: int) -> Path:
    """Write checkpoint `step-<trainer_state['step']>` atomically on all processes; prune to `keep_last`."""
    step = int(trainer_state["step"])
    root = checkpoints_root(output_dir)
    final = root / f"step-{step:06d}"
    staging = root / f".tmp-step-{step:06d}"
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        (staging / STATE_DIR).mkdir(parents=True)
    accelerator.wait_for_everyone()
    rank = accelerator.process_index
    torch.save(_rng_state(), staging / STATE_DIR / f"rng_rank{rank}.pt")
    optimizer_sharded = accelerator.distributed_type.value in ("DEEPSPEED", "FSDP")
    if optimizer_sharded:
        torch.save(optimizer.state_dict(), staging / STATE_DIR / f"optimizer_rank{rank}.pt")
    if accelerator.is_main_process:
        if not optimizer_sharded:
            torch.save(optimizer.state_dict(), staging / STATE_DIR / "optimizer.pt")
        torch.save(scheduler.state_dict(), staging / STATE_DIR / "scheduler.pt")
        _save_policy(policy, staging)
        write_json_atomic(staging / STATE_DIR / TRAINER_STATE, trainer_state)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        for old in list_checkpoints(output_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        for leftover in root.glob(".tmp-step-*"):
            shutil.rmtree(leftover, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_adapter_weights(policy: UnifiedModel, checkpoint: str | Path) -> None:
    """Load the LoRA adapter weights a checkpoint saved into the (already LoRA-wrapped) policy."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = Path(checkpoint) / STATE_DIR / "adapter.safetensors"
    if not path.is_file():
        raise UnirlError(f"'{checkpoint}' holds no LoRA adapter; resume it with lora.r=0")
    set_peft_model_state_dict(policy.peft_model, load_file(str(path), device=str(policy.device)))


def load_training_state(accelerator, optimizer, scheduler, checkpoint: str | Path) -> None:
    """Restore optimizer, scheduler and this process's RNG from a checkpoint (weights are loaded separately)."""
    folder = Path(checkpoint) / STATE_DIR
    rank = accelerator.process_index
    sharded = folder / f"optimizer_rank{rank}.pt"
    optimizer_file = sharded if sharded.is_file() else folder / "optimizer.pt"
    optimizer.load_state_dict(torch.load(optimizer_file, map_location="cpu", weights_only=True))
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
    rng_file = folder / f"rng_rank{rank}.pt"
    if not rng_file.is_file():
        raise UnirlError(f"'{checkpoint}' was written by fewer processes (no {rng_file.name}); resume with the "
                         f"same number of processes as the original run")
    _set_rng_state(torch.load(rng_file, weights_only=True))
