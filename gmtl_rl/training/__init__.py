"""Training loops, one per agent family, each a `base.TrainingRun`: the one run lifecycle."""
