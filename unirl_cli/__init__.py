"""unirl: post-train unified multimodal models with the UniRL recipe and measure them on GenEval."""

__version__ = "0.1.0"
