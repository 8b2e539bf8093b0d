"""The shapes world: a CPU-sized GenEval of flat-coloured shapes, its renderer, detector and mini model.

`spec` names the shapes and colours, `render` draws a correct scene for any GenEval-style metadata,
`detector` reads scenes back with classical image processing, `prompts` holds the fixed evaluation set,
and `mini`/`pretrain` build and train the small Janus that ships as the model `mini`.
"""
