"""The shapes world's content: shapes and colours (`spec`), the renderer, truthful descriptions, the prompt sets,
image perturbations and the sentences its tokenizers learn. Its evaluation (detector, suite) is in `eval.shapes`."""
