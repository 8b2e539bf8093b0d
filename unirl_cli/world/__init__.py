"""Recipes of the shapes world: pretrain the minis (`pretrain`, with the `vq_train`, `magvit_train`,
`vision_train`, `lm_stage` and `reading` stages), distil a Show-o mini's guidance into its conditional branch
(`guidance`), and run UniRL's self-improvement on them (`improve`).

The world's content (shapes, renderer, prompts) is in `data.shapes`, its detector and GenEval suite in
`eval.shapes`, the mini models' builders in `models.janus.mini` and `models.showo.mini`.
"""
