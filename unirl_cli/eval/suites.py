"""Every prompt suite `unirl eval geneval --suite` knows: GenEval itself and the shapes world's.

The suites live with their benchmarks (`eval.geneval.suites`, `eval.shapes.suite`); this module, above both,
is the one place that lists them, so neither imports the other.
"""

from __future__ import annotations

from unirl_cli.errors import UnirlError
from unirl_cli.eval.geneval.suites import GENEVAL_SUITE, Suite
from unirl_cli.eval.shapes.suite import SHAPES_SUITE

SUITES: dict[str, Suite] = {suite.name: suite for suite in (GENEVAL_SUITE, SHAPES_SUITE)}


def get_suite(name: str) -> Suite:
    """The suite called `name`, or a `UnirlError` listing the known ones."""
    if name not in SUITES:
        raise UnirlError(f"suite '{name}' is not known; known suites: {', '.join(sorted(SUITES))}")
    return SUITES[name]
