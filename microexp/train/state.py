"""Train state, learning-rate schedule, optimizer and freezing (optax), per fold.

The engine stacks `TrainState`s of several folds on a leading `fold` axis (`jax.vmap(init)`), so
everything here is written for ONE fold. `OptimizerSpec` holds exactly the config fields the
optimizer reads (hashable: compiled steps are cached on it, see steps.StepSpec).
"""

from __future__ import annotations

import dataclasses
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


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
  """The `config.train` fields the optimizer and its schedule read, nothing else."""

  name: str = "adamw"  # 'adamw' | 'sgd' (Nesterov momentum, decoupled weight decay)
  learning_rate: float = 1e-3
  weight_decay: float = 1e-4
  momentum: float = 0.9
  schedule: str = "warmup_cosine"  # 'warmup_cosine' | 'constant' (Keras' default: the thesis)
  warmup_epochs: float = 0.0
  epochs: int = 1
  grad_clip: float = 0.0
  freeze: tuple[str, ...] = ()  # top-level parameter names that never change

  @classmethod
  def from_config(cls, train_config) -> "OptimizerSpec":
    return cls(name=str(train_config.optimizer), learning_rate=float(train_config.learning_rate),
               weight_decay=float(train_config.weight_decay),
               momentum=float(train_config.get("momentum", 0.9)),
               schedule=str(train_config.get("schedule", "warmup_cosine")),
               warmup_epochs=float(train_config.warmup_epochs), epochs=int(train_config.epochs),
               grad_clip=float(train_config.get("grad_clip", 0.0) or 0.0),
               freeze=tuple(str(s) for s in (train_config.get("freeze") or ())))


def learning_rate_fn(spec: OptimizerSpec, steps_per_epoch: int) -> optax.Schedule:
  """'warmup_cosine': linear warmup over `warmup_epochs`, then cosine decay to 0 at `epochs`;
  'constant': `learning_rate` throughout (Keras' default, the thesis's setting)."""
  total = max(int(spec.epochs) * steps_per_epoch, 1)
  warmup = min(int(round(float(spec.warmup_epochs) * steps_per_epoch)), total - 1)
  peak = float(spec.learning_rate)
  if spec.schedule == "constant":
    if warmup:
      raise ValueError("config.train.schedule='constant' takes no warmup; set "
                       f"config.train.warmup_epochs=0 (it is {spec.warmup_epochs}).")
    return optax.constant_schedule(peak)
  if spec.schedule != "warmup_cosine":
    raise ValueError(f"config.train.schedule must be 'warmup_cosine' or 'constant', got "
                     f"{spec.schedule!r}.")
  if not warmup:
    return optax.cosine_decay_schedule(peak, decay_steps=total)
  return optax.warmup_cosine_decay_schedule(init_value=0.0, peak_value=peak, warmup_steps=warmup,
                                            decay_steps=total, end_value=0.0)


def _decay_mask(params):
  """Weight decay on kernels only (not biases, BatchNorm scales, or other 1-D params)."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def trainable_mask(params, freeze: Sequence[str]):
  """Pytree of bools like `params`: False under the frozen top-level names, True elsewhere.

  Raises if a name in `freeze` (config.train.freeze) is not a top-level parameter collection.
  """
  unknown = [name for name in freeze if name not in params]
  if unknown:
    raise ValueError(f"config.train.freeze names {list(unknown)}, which are not top-level "
                     f"parameters of the model; available: {sorted(params)}.")
  return {k: jax.tree.map(lambda _, k=k: k not in freeze, v) for k, v in params.items()}


def create_optimizer(spec: OptimizerSpec, steps_per_epoch: int) -> optax.GradientTransformation:
  """adamw | sgd, warmup+cosine, clipping; frozen subtrees get neither updates nor weight decay."""
  schedule = learning_rate_fn(spec, steps_per_epoch)
  if spec.name == "adamw":
    tx = optax.adamw(schedule, weight_decay=spec.weight_decay, mask=_decay_mask)
  elif spec.name == "sgd":
    tx = optax.chain(optax.add_decayed_weights(spec.weight_decay, _decay_mask),
                     optax.sgd(schedule, momentum=spec.momentum, nesterov=True))
  else:
    raise ValueError(f"config.train.optimizer must be 'adamw' or 'sgd', got {spec.name!r}.")
  if spec.grad_clip > 0:
    tx = optax.chain(optax.clip_by_global_norm(spec.grad_clip), tx)
  if spec.freeze:
    labels = lambda params: jax.tree.map(lambda t: "train" if t else "frozen",
                                         trainable_mask(params, spec.freeze))
    tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)
  return tx


def create_train_state(model, key, sample_x, sample_mask, tx) -> TrainState:
  """Initializes one fold: sample_x [1, ...] (and sample_mask [1, T] for clips). Pure."""
  k_params, k_dropout = jax.random.split(key)
  kwargs = {} if sample_mask is None else {"mask": sample_mask}
  variables = model.init({"params": k_params, "dropout": k_dropout}, sample_x, train=False,
                         **kwargs)
  params = variables["params"]
  batch_stats = variables.get("batch_stats", {})
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                    opt_state=tx.init(params))
