"""The Janus / Janus-Pro family: the backend (model.py) on transformers' `JanusForConditionalGeneration`, its sampler
(sampling.py), understanding (understanding.py), DeepSeek's token, prompt and pixel formats (formats.py), conversion
of DeepSeek-layout checkpoints (convert.py) and the tiny test model (tiny.py)."""

from unirl_cli.models.janus.model import JanusModel

__all__ = ["JanusModel"]
