"""Training: folds, metrics, augmentation, state, steps, fold-parallel engine, checkpoints, writers.

Entry point: `microexp.train.engine.run(config, workdir)` (see docs/training.md).
"""
