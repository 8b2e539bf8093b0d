"""`unirl prompts`: write and check training-prompt files (GenEval-style metadata + question/answer)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import List, Optional

import typer

from unirl_cli.cli import app
from unirl_cli.cli.common import check_positive, stdout

prompts_app = typer.Typer(help="Make and check training-prompt files.", no_args_is_help=True)
app.add_typer(prompts_app, name="prompts")


def parse_tag_weights(items: list[str]) -> dict[str, float] | None:
    """`["position=2", "counting"]` -> {"position": 2.0, "counting": 1.0}; None when empty."""
    from unirl_cli.errors import UnirlError

    if not items:
        return None
    weights = {}
    for item in items:
        tag, _, weight = item.partition("=")
        try:
            weights[tag] = float(weight) if weight else 1.0
        except ValueError as err:
            raise UnirlError(f"--tag '{item}': the weight after '=' must be a number, e.g. position=2") from err
    return weights


@prompts_app.command("generate")
def generate_file(
    out: Path = typer.Option(..., "--out", "-o", help="JSONL file to write."),
    num: int = typer.Option(5000, "--num", help="How many distinct prompts."),
    seed: int = typer.Option(0, "--seed", help="The same seed gives the same file."),
    tag: Optional[List[str]] = typer.Option(None, "--tag", help="Tag to include, optionally weighted: position=2 (repeatable)."),
) -> None:
    """Write GenEval-style training prompts (never a GenEval test prompt) with questions and answers."""
    from unirl_cli.data.prompts import generate_prompts, write_prompts
    from unirl_cli.fileio import check_output_file

    check_output_file(out)
    check_positive("num", num)
    records = generate_prompts(num, seed, tags=parse_tag_weights(tag or []))
    write_prompts(out, records)
    counts = Counter(record["tag"] for record in records)
    stdout.print(f"wrote {len(records)} prompts to {out}: " + ", ".join(f"{t} {n}" for t, n in sorted(counts.items())))


@prompts_app.command("check")
def check_file(path: Path = typer.Argument(..., help="A prompts JSONL file.")) -> None:
    """Validate a prompts file line by line and check that it shares no prompt with GenEval."""
    from unirl_cli.data.prompts import geneval_overlap, read_prompts
    from unirl_cli.errors import UnirlError

    records = read_prompts(path)
    overlap = geneval_overlap(records)
    if overlap:
        raise UnirlError(f"{path}: {len(overlap)} prompt(s) are GenEval test prompts (first: '{overlap[0]}'); "
                         f"remove them, or GenEval scores after training are meaningless")
    counts = Counter(record["tag"] for record in records)
    stdout.print(f"{path}: {len(records)} valid prompts, none from GenEval: "
                 + ", ".join(f"{t} {n}" for t, n in sorted(counts.items())))
