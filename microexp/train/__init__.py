"""Training: folds, metrics, augmentation, state, steps, chunking, the loop, checkpoints, writers.

Entry point: `microexp.train.engine.run(config, workdir)` (see docs/training.md).
"""
