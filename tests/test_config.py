"""Config machinery: YAML + key=value overrides, type checks, unknown keys, saving."""

from dataclasses import dataclass
from typing import Literal, Optional

import pytest
import yaml

from unirl_cli.config import (SamplingConfig, build_config, describe_config, load_config, option, parse_overrides,
                              save_config, section)
from unirl_cli.errors import UnirlError


@dataclass
class Inner:
    beta: float = option(0.0, "KL coefficient")
    loss_type: Literal["grpo", "dapo"] = option("grpo", "aggregation")


@dataclass
class Outer:
    steps: int = option(10, "number of steps")
    name: str = option("run", "name")
    flag: bool = option(False, "a flag")
    limit: Optional[int] = option(None, "optional limit")
    tags: list[str] = option(["a"], "tags")
    inner: Inner = section(Inner, "inner section")
    sampling: SamplingConfig = section(SamplingConfig, "sampling")


def test_overrides_parse_nested_and_typed():
    assert parse_overrides(["inner.beta=0.1", "steps=3", "flag=true", "tags=[x, y]"]) == {
        "inner": {"beta": 0.1}, "steps": 3, "flag": True, "tags": ["x", "y"]}


def test_yaml_then_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("steps: 5\ninner:\n  beta: 0.2\n  loss_type: dapo\n")
    config = load_config(Outer, recipe, ["inner.beta=0.05", "sampling.guidance_scale=3"])
    assert config.steps == 5 and config.inner.beta == 0.05 and config.inner.loss_type == "dapo"
    assert config.sampling.guidance_scale == 3.0 and isinstance(config.sampling.guidance_scale, float)


def test_unknown_key_suggests_and_lists_valid_keys():
    with pytest.raises(UnirlError) as err:
        load_config(Outer, None, ["inner.bta=0.1"])
    message = str(err.value)
    assert "inner.bta" in message and "did you mean 'inner.beta'" in message and "loss_type" in message


def test_all_errors_reported_together():
    with pytest.raises(UnirlError) as err:
        build_config(Outer, {"steps": "many", "flag": "maybe", "inner": {"loss_type": "ppo"}})
    message = str(err.value)
    assert "steps" in message and "flag" in message and "'ppo'" in message


def test_int_accepts_integral_float_and_rejects_fraction():
    assert build_config(Outer, {"steps": 4.0}).steps == 4
    with pytest.raises(UnirlError):
        build_config(Outer, {"steps": 4.5})


def test_float_accepts_exponent_without_a_dot_and_rejects_words():
    # YAML 1.1 reads 3e-4 as a string; users write learning rates that way.
    assert load_config(Outer, None, ["inner.beta=3e-4"]).inner.beta == 3e-4
    with pytest.raises(UnirlError, match="inner.beta: expected a number"):
        load_config(Outer, None, ["inner.beta=high"])


def test_optional_accepts_null():
    assert build_config(Outer, {"limit": None}).limit is None
    assert build_config(Outer, {"limit": 3}).limit == 3


def test_bad_override_and_bad_yaml(tmp_path):
    with pytest.raises(UnirlError, match="key=value"):
        parse_overrides(["steps"])
    broken = tmp_path / "broken.yaml"
    broken.write_text("steps: [1,\n")
    with pytest.raises(UnirlError, match="not valid YAML"):
        load_config(Outer, broken)
    with pytest.raises(UnirlError, match="is neither a file nor a shipped train config"):
        load_config(Outer, tmp_path / "missing.yaml")


def test_save_roundtrip(tmp_path):
    config = load_config(Outer, None, ["inner.beta=0.3", "tags=[q]"])
    save_config(config, tmp_path / "config.yaml")
    reloaded = load_config(Outer, tmp_path / "config.yaml")
    assert reloaded == config
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["inner"]["beta"] == 0.3


def test_describe_lists_leaf_keys_with_help():
    rows = {row[0]: row for row in describe_config(Outer)}
    assert rows["inner.beta"][3] == "KL coefficient"
    assert "sampling.guidance_scale" in rows
