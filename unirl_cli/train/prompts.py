"""Which training prompts each step and each process sees: a pure function of (seed, step, rank).

Prompts are visited in a fresh seeded permutation per epoch; the global cursor after step s is
s * prompts_per_step, so a resumed run draws exactly the prompts the uninterrupted run would have.
"""

from __future__ import annotations

import random

from unirl_cli.errors import UnirlError
from unirl_cli.train.config import PromptsConfig


def load_training_prompts(config: PromptsConfig) -> list[dict]:
    """The prompt records of a run: read from `config.file` or generated, filtered to `config.tags`."""
    from unirl_cli.data.prompts import generate_prompts, geneval_overlap, read_prompts

    tags = list(config.tags) or None
    if config.file:
        records = read_prompts(config.file)
        if tags:
            records = [record for record in records if record["tag"] in tags]
            if not records:
                raise UnirlError(f"prompt file {config.file} has no prompts with tags {tags}")
        overlap = geneval_overlap(records)
        if overlap and not config.allow_geneval_overlap:
            raise UnirlError(f"prompt file {config.file} has {len(overlap)} GenEval test prompt(s), e.g. "
                             f"'{overlap[0]}'; remove them (UniRL keeps training and test prompts apart) or set "
                             f"prompts.allow_geneval_overlap=true")
    else:
        records = generate_prompts(config.num_generated, config.seed, tags=tags)
    if not records:
        raise UnirlError("no training prompts; set prompts.num_generated > 0 or pass prompts.file")
    return balanced_by_tag(records) if config.balance_tags else records


def balanced_by_tag(records: list[dict]) -> list[dict]:
    """`records` with each tag's prompts repeated (cyclically) up to the size of the largest tag, so an epoch
    draws every tag equally often; order within a tag is kept."""
    from unirl_cli.data.prompts import records_by_tag

    by_tag = records_by_tag(records)
    largest = max(len(group) for group in by_tag.values())
    return [group[i % len(group)] for group in by_tag.values() for i in range(largest)]


def _epoch_order(num_records: int, seed: int, epoch: int) -> list[int]:
    order = list(range(num_records))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


def prompts_for_step(records: list[dict], step: int, prompts_per_step: int, seed: int) -> list[dict]:
    """The `prompts_per_step` records of global step `step` (all processes together), in order."""
    start = step * prompts_per_step
    chosen = []
    for cursor in range(start, start + prompts_per_step):
        epoch, index = divmod(cursor, len(records))
        chosen.append(records[_epoch_order(len(records), seed, epoch)[index]])
    return chosen


def shard_for_rank(items: list, rank: int, world_size: int) -> list:
    """The contiguous share of `items` that process `rank` handles (len(items) divisible by world_size)."""
    per_rank = len(items) // world_size
    return items[rank * per_rank:(rank + 1) * per_rank]


def image_seed(run_seed: int, step: int, image_index: int) -> int:
    """The sampling seed of global image `image_index` at `step`: reproducible alone and on resume."""
    return (run_seed * 1_000_003 + step * 10_007 + image_index) % (2**31 - 1)
