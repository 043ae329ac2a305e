"""Test helpers for the training engine: a tiny registered model and fake dataset arrays."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import ml_collections
import numpy as np

from microexp import models

TINY_MODEL = "test_tiny_cnn"
EMOTIONS_3 = ("happiness", "surprise", "repression")


class TinyCNN(nn.Module):
  """[B, H, W, C] -> conv -> BN -> relu -> mean -> dense logits [B, K]."""

  num_classes: int
  dtype: object = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False, mask=None):
    del mask
    x = nn.Conv(8, (3, 3), dtype=self.dtype)(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
    x = nn.relu(x).mean(axis=(1, 2))
    return nn.Dense(self.num_classes)(x).astype(jnp.float32)


if TINY_MODEL not in models._REGISTRY:  # pylint: disable=protected-access
  models.register(TINY_MODEL)(lambda num_classes, dtype=jnp.float32, **kw: TinyCNN(
      num_classes, dtype, **kw))


def fake_arrays(num_subjects: int = 5, clips_per_subject: int = 9, size: int = 8, seed: int = 0,
                noise: float = 1.0) -> dict[str, np.ndarray]:
  """Loader-contract arrays: inputs [N, size, size, 3], the class shows as a bump in channel y."""
  rng = np.random.default_rng(seed)
  n = num_subjects * clips_per_subject
  labels = np.arange(n) % 3
  rng.shuffle(labels)
  inputs = noise * rng.normal(size=(n, size, size, 3)).astype(np.float32)
  inputs[np.arange(n), size // 4:3 * size // 4, size // 4:3 * size // 4, labels] += 1.5
  subjects = np.repeat([f"s{i:02d}" for i in range(num_subjects)], clips_per_subject)
  return {"inputs": inputs, "emotion": np.array(EMOTIONS_3)[labels], "subject": subjects,
          "dataset": np.full(n, "fake"), "clip": np.array([f"c{i:03d}" for i in range(n)])}


def tiny_config(**train) -> ml_collections.ConfigDict:
  """A full engine config for the tiny model on `fake_arrays` (3 classes, LOSO, 1 seed)."""
  from configs import common  # pylint: disable=g-import-not-at-top

  config = common.casme2_config(classes="3", synthetic=False)
  config.model.name = TINY_MODEL
  config.dataset.image_size = 8
  t = config.train
  # SGD: adamw turns float reduction-order noise (grouped convs under vmap) into ~1e-3 changes
  # of the probabilities, too much for the fold-parallel == sequential comparisons.
  t.optimizer, t.epochs, t.batch_size, t.eval_batch_size, t.learning_rate = "sgd", 4, 8, 16, 0.1
  t.warmup_epochs, t.seeds, t.final_seeds, t.tensorboard = 0.0, [0], [], False
  t.augment.crop, t.augment.flip_h = 1, True
  t.num_val_subjects = 1
  t.fold_parallel = True  # explicit: the tests compare it with fold_parallel=False
  for k, v in train.items():
    t[k] = v
  return config


def tiny_context(config: ml_collections.ConfigDict, workdir, epochs: int = 1):
  """(loop.Context of a run of `config` on `fake_arrays` writing under `workdir`, its model, its
  data): what the engine builds before its chunks, for tests that drive `loop` directly."""
  # pylint: disable=g-import-not-at-top
  from microexp.models import builder
  from microexp.train import checkpoint, inputs, loop, progress, writers
  # pylint: enable=g-import-not-at-top

  data, subset = inputs.prepare_data(fake_arrays(), config.dataset.classes)
  model = builder.from_config(config, subset.num_classes)
  ctx = loop.Context(config=config, model=model, data=data, num_classes=subset.num_classes,
                     ckpt_root=workdir / "checkpoints",
                     writers=writers.CurveWriters(workdir / "tb", enabled=False),
                     progress=progress.Progress(epochs), signals=checkpoint.StopSignals(),
                     pretrained=builder.pretrained(model))
  return ctx, model, data


def probs_by_fold(results: dict, seed: int = 0) -> dict[str, np.ndarray]:
  """{fold: test probabilities [n_test, K]} of one seed, from a results dict."""
  out = {}
  for p in results["predictions"]:
    if p["seed"] == seed:
      out.setdefault(p["subject"], []).append(p["probs"])
  return {k: np.array(v) for k, v in out.items()}
