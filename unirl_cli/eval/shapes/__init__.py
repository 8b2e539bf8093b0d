"""The shapes world's GenEval suite: a classical detector of flat-coloured shapes and the suite that registers it."""
