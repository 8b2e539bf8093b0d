"""Shared CLI state, console and option parsing helpers (no ML here)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console

from unirl_cli.errors import UnirlError

console = Console(stderr=True)
stdout = Console()


@dataclass
class _State:
    debug: bool = False


state = _State()

DEVICE_HELP = "cpu, cuda, cuda:N, mps, or auto (cuda, then mps, then cpu)"
DTYPE_HELP = "float32, bfloat16, float16, or auto (bf16 on GPU, fp32 on CPU)"


def check_positive(name: str, value: float | int | None, allow_zero: bool = False) -> None:
    """Raise a one-line `UnirlError` when an option that must be positive is not."""
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise UnirlError(f"--{name.replace('_', '-')} must be {bound}, got {value}")


THREADS_HELP = "torch CPU threads (default: torch's own choice)."


def apply_threads(threads: int | None) -> None:
    """`--threads N`: check it, then set torch's intra-op threads (imports torch, so call it after validation)."""
    check_positive("threads", threads)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def print_config(config_class: type, resolved, title: str) -> None:
    """`--show-config`: every key with type, default and help, then the resolved values as YAML."""
    import yaml
    from rich.table import Table

    from unirl_cli.config import config_to_dict, describe_config

    table = Table(title=f"{title} (override as key=value)")
    for column in ("key", "type", "default", "help"):
        table.add_column(column, overflow="fold")
    for row in describe_config(config_class):
        table.add_row(*row)
    stdout.print(table)
    stdout.print("[bold]resolved config[/]")
    stdout.print(yaml.safe_dump(config_to_dict(resolved), sort_keys=False), highlight=False)
