"""Show-o (v1, MAGVIT-v2 variants) behind the unirl model interface; see `model.ShowoModel`."""

from unirl_cli.models.showo.model import ShowoModel

__all__ = ["ShowoModel"]
