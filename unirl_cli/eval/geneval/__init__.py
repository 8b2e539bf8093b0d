"""GenEval (Ghosh et al. 2023) in unirl: generation in its folder layout, its detector and rules, and UniRL's
imbalance metric. Entry point: `pipeline.run_geneval`; the rules alone: `scoring.score_image`."""
