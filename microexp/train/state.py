"""Train state, learning-rate schedule and optimizer (optax), per fold.

The engine stacks `TrainState`s of several folds on a leading `fold` axis (`jax.vmap(init)`), so
everything here is written for ONE fold.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  """step: [] int32; params / batch_stats: pytrees; opt_state: optax state."""

  step: jnp.ndarray
  params: Any
  batch_stats: Any
  opt_state: Any

  def variables(self) -> dict:
    out = {"params": self.params}
    if self.batch_stats:
      out["batch_stats"] = self.batch_stats
    return out


def learning_rate_fn(train_config, steps_per_epoch: int) -> optax.Schedule:
  """Linear warmup over `warmup_epochs`, then cosine decay to 0 at `epochs`."""
  total = max(int(train_config.epochs) * steps_per_epoch, 1)
  warmup = min(int(round(float(train_config.warmup_epochs) * steps_per_epoch)), total - 1)
  peak = float(train_config.learning_rate)
  if not warmup:
    return optax.cosine_decay_schedule(peak, decay_steps=total)
  return optax.warmup_cosine_decay_schedule(init_value=0.0, peak_value=peak, warmup_steps=warmup,
                                            decay_steps=total, end_value=0.0)


def _decay_mask(params):
  """Weight decay on kernels only (not biases, BatchNorm scales, or other 1-D params)."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def check_freeze(params, freeze: Sequence[str]):
  """Raises if a name in config.train.freeze is not a top-level parameter collection."""
  unknown = [name for name in freeze if name not in params]
  if unknown:
    raise ValueError(f"config.train.freeze names {unknown}, which are not top-level parameters of "
                     f"the model; available: {sorted(params)}.")


def create_optimizer(train_config, steps_per_epoch: int) -> optax.GradientTransformation:
  """adamw | sgd (momentum, decoupled weight decay), warmup+cosine, clipping, frozen subtrees."""
  schedule = learning_rate_fn(train_config, steps_per_epoch)
  name = train_config.optimizer
  if name == "adamw":
    tx = optax.adamw(schedule, weight_decay=float(train_config.weight_decay), mask=_decay_mask)
  elif name == "sgd":
    tx = optax.chain(optax.add_decayed_weights(float(train_config.weight_decay), _decay_mask),
                     optax.sgd(schedule, momentum=float(train_config.momentum), nesterov=True))
  else:
    raise ValueError(f"config.train.optimizer must be 'adamw' or 'sgd', got {name!r}.")
  if float(train_config.get("grad_clip", 0.0)) > 0:
    tx = optax.chain(optax.clip_by_global_norm(float(train_config.grad_clip)), tx)
  freeze = tuple(train_config.get("freeze", ()) or ())
  if freeze:
    labels = lambda params: {k: jax.tree.map(lambda _: "frozen" if k in freeze else "train", v)
                             for k, v in params.items()}
    tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)
  return tx


def create_train_state(model, key, sample_x, sample_mask, tx) -> TrainState:
  """Initializes one fold: sample_x [1, ...] (and sample_mask [1, T] for clips)."""
  k_params, k_dropout = jax.random.split(key)
  kwargs = {} if sample_mask is None else {"mask": sample_mask}
  variables = model.init({"params": k_params, "dropout": k_dropout}, sample_x, train=False,
                         **kwargs)
  params = variables["params"]
  batch_stats = variables.get("batch_stats", {})
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                    opt_state=tx.init(params))
