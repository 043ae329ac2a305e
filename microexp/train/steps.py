"""Train and eval steps for ONE fold, and their fold-stacked, sharded versions.

The dataset stays resident on the device(s) (`data`: inputs [N, ...], labels [N], mask [N, T]?).
A fold is described by a `plan` (leading fold axis F when stacked):
  key           [F, 2] uint32   the fold's PRNG key (from seed and fold index, never run-time state)
  train_mask    [F, N] bool     the fold's training samples
  n_train       [F] int32
  class_weights [F, K] float32  from the fold's training labels (ones if not class-balanced)
Each epoch, `epoch_order` draws a permutation of every fold's training indices; step s of the
epoch takes positions s*B .. s*B+B-1 modulo that fold's n_train, so ragged fold sizes cost nothing
and every fold runs the same number of steps. Every random draw is
fold_in(fold_in(fold_in(key, stream), epoch), step): rerunning an epoch reproduces it bit for bit.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from microexp.train import augment as augment_lib
from microexp.train.state import TrainState

# Independent random streams of a fold.
STREAM_INIT, STREAM_ORDER, STREAM_STEP = 0, 1, 2


def fold_keys(seed: int, fold_indices) -> jnp.ndarray:
  """[F] fold indices -> [F, 2] uint32 raw keys fold_in(PRNGKey(seed), fold index)."""
  base = jax.random.PRNGKey(seed)
  return jnp.stack([jax.random.fold_in(base, int(i)) for i in fold_indices])


def epoch_order(key, train_mask, epoch):
  """key [2], train_mask [N] -> [N] int32: training indices first, randomly permuted."""
  k = jax.random.fold_in(jax.random.fold_in(key, STREAM_ORDER), epoch)
  u = jax.random.uniform(k, train_mask.shape)
  return jnp.argsort(jnp.where(train_mask, u, 2.0)).astype(jnp.int32)


def weighted_cross_entropy(logits, targets, class_weights):
  """logits [B, K], soft targets [B, K], class_weights [K] -> scalar mean weighted CE."""
  ce = optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)
  return jnp.mean(ce * (targets @ class_weights))


def _apply(model, variables, x, mask, *, train, rng=None):
  kwargs = {} if mask is None else {"mask": mask}
  if train:
    mutable = ["batch_stats"] if "batch_stats" in variables else []
    out = model.apply(variables, x, train=True, rngs={"dropout": rng}, mutable=mutable, **kwargs)
    return out if mutable else (out[0], {})
  return model.apply(variables, x, train=False, **kwargs)


def train_step_one(state: TrainState, plan, order, data, epoch, step, *, model, tx, config,
                   is_flow: bool, num_classes: int, data_sharding=None):
  """One optimizer step of one fold. Returns (state, {'loss', 'correct'} scalars)."""
  batch_size = config.train.batch_size
  pos = (step * batch_size + jnp.arange(batch_size)) % jnp.maximum(plan["n_train"], 1)
  idx = order[pos]
  x = data["inputs"][idx]
  labels = data["labels"][idx]
  mask = data["mask"][idx] if "mask" in data else None
  if data_sharding is not None:  # data parallel within a fold ('data' mesh axis)
    x = jax.lax.with_sharding_constraint(x, data_sharding)
  key = jax.random.fold_in(jax.random.fold_in(
      jax.random.fold_in(plan["key"], STREAM_STEP), epoch), step)
  k_aug, k_mix, k_drop = jax.random.split(key, 3)
  aug = config.train.augment
  x = augment_lib.augment(k_aug, x, aug, is_flow=is_flow)
  targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes),
                                float(config.train.label_smoothing))
  if float(aug.get("mixup", 0.0)) > 0:
    x, targets, mask = augment_lib.mixup(k_mix, x, targets, mask, float(aug.mixup))

  def loss_fn(params):
    logits, updates = _apply(model, {"params": params, **(
        {"batch_stats": state.batch_stats} if state.batch_stats else {})}, x, mask, train=True,
                             rng=k_drop)
    return weighted_cross_entropy(logits, targets, plan["class_weights"]), (logits, updates)

  (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  param_updates, opt_state = tx.update(grads, state.opt_state, state.params)
  new_state = state.replace(step=state.step + 1,
                            params=optax.apply_updates(state.params, param_updates),
                            batch_stats=updates.get("batch_stats", state.batch_stats),
                            opt_state=opt_state)
  correct = jnp.sum(jnp.argmax(logits, -1) == labels)
  return new_state, {"loss": loss, "correct": correct}


def eval_step_one(variables, idx, data, *, model):
  """Logits [M, K] of one fold's model on samples idx [M] (padding indices included)."""
  x = data["inputs"][idx]
  mask = data["mask"][idx] if "mask" in data else None
  return _apply(model, variables, x, mask, train=False).astype(jnp.float32)


def make_steps(model, tx, config, *, is_flow: bool, num_classes: int, mesh):
  """Jitted fold-stacked functions sharded over `mesh` ('fold', 'data').

  Returns (train_step, eval_step, order_fn):
    train_step(state [F], plan [F], order [F, N], data, epoch, step) -> (state, metrics [F])
    eval_step(variables [F], idx [F, M], data) -> logits [F, M, K]
    order_fn(keys [F, 2], train_mask [F, N], epoch) -> order [F, N]
  """
  fold = NamedSharding(mesh, P("fold"))
  data_sharding = NamedSharding(mesh, P("data")) if mesh.shape["data"] > 1 else None
  one = functools.partial(train_step_one, model=model, tx=tx, config=config, is_flow=is_flow,
                          num_classes=num_classes, data_sharding=data_sharding)
  train_step = jax.jit(
      jax.vmap(one, in_axes=(0, 0, 0, None, None, None), spmd_axis_name="fold"),
      out_shardings=fold, donate_argnums=(0,))
  eval_one = functools.partial(eval_step_one, model=model)
  eval_step = jax.jit(jax.vmap(eval_one, in_axes=(0, 0, None), spmd_axis_name="fold"),
                      out_shardings=fold)
  order_fn = jax.jit(jax.vmap(epoch_order, in_axes=(0, 0, None)), out_shardings=fold)
  return train_step, eval_step, order_fn
