"""Train and eval steps for ONE fold, and their fold-stacked, sharded, epoch-at-a-time versions.

The dataset stays resident on the device(s) (`data`: inputs [N, ...], mask [N, T]?,
dataset_index [N]: the clip's source dataset, and the task's arrays, e.g. labels [N]; the task
(tasks/, `StepSpec.task`) turns them into targets and a loss).
A fold is described by a `plan` (leading fold axis F when stacked):
  key           [F, 2] uint32   the fold's PRNG key (from seed and fold index, never run-time state)
  train_mask    [F, N] bool     the fold's training samples
  n_train       [F] int32
  class_weights [F, D, K] float32  loss weight per (source dataset, class), from the fold's
                training labels (inputs.loss_weights; ones if not class-balanced)
Each epoch, `epoch_order` draws a permutation of every fold's training indices; step s of the
epoch takes positions s*B .. s*B+B-1 modulo that fold's n_train, so ragged fold sizes cost nothing
and every fold runs the same number of steps. Every random draw is
fold_in(fold_in(fold_in(key, stream), epoch), step): rerunning an epoch reproduces it bit for bit,
whatever the chunking.

`train_epoch` runs a whole epoch in one jitted call (`lax.scan` over the step index), with the
per-step metrics returned as device arrays [F, S]: the host need not wait for it.

The jitted functions are built from a `StepSpec` holding exactly the config fields the steps read,
and cached on (model, spec, mesh): a changed field that matters gives a new compile, and nothing
else can leak into a cached step.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from microexp.train import workdir as workdir_lib
from microexp.train import augment as augment_lib
from microexp.train import state as state_lib
from microexp.train import tasks as tasks_lib
from microexp.train.tasks import emotions
from microexp.train.state import TrainState

# Independent random streams of a fold.
STREAM_INIT, STREAM_ORDER, STREAM_STEP = 0, 1, 2
# The host data arrays placed on the device(s) (those present), besides the task's device_keys.
DEVICE_DATA = ("inputs", "mask", "dataset_index")


@dataclasses.dataclass(frozen=True)
class StepSpec:
  """Everything the compiled steps depend on besides the model and the mesh (hashable)."""

  batch_size: int
  label_smoothing: float
  augment: tuple[tuple[str, Any], ...]  # sorted (name, value) pairs of config.train.augment
  optimizer: state_lib.OptimizerSpec
  steps_per_epoch: int
  num_classes: int
  is_flow: bool  # the inputs are optical flow (augmentation moves the vectors)
  tta_flip_h: bool = False  # evaluation averages the input and its (flow-aware) mirror
  task: tasks_lib.Task = emotions.Emotions()  # targets, loss, TTA (tasks/base.py)
  # Stacked folds on one device: 0 = per backend (`fold_group`), else folds vmapped together.
  fold_group: int = 0

  @classmethod
  def from_config(cls, config, *, steps_per_epoch: int, num_classes: int) -> "StepSpec":
    tc = config.train
    return cls(batch_size=int(tc.batch_size), label_smoothing=float(tc.label_smoothing),
               augment=tuple(sorted(tc.augment.to_dict().items())),
               optimizer=state_lib.OptimizerSpec.from_config(tc), steps_per_epoch=steps_per_epoch,
               num_classes=num_classes,
               is_flow=config.dataset.representation in workdir_lib.FLOW_REPRESENTATIONS,
               tta_flip_h=bool((tc.get("tta") or {}).get("flip_h", False)),
               task=tasks_lib.from_config(tc), fold_group=int(tc.get("fold_group", 0) or 0))


def device_data(data: dict, task: tasks_lib.Task) -> dict:
  """The host arrays of `data` that the steps of `task` read (placed on the device once)."""
  return {key: data[key] for key in DEVICE_DATA + tuple(task.device_keys) if key in data}


def fold_keys(seed: int, fold_indices) -> jnp.ndarray:
  """[F] fold indices -> [F, 2] uint32 raw keys fold_in(PRNGKey(seed), fold index)."""
  base = jax.random.PRNGKey(seed)
  return jnp.stack([jax.random.fold_in(base, int(i)) for i in fold_indices])


def epoch_order(key, train_mask, epoch):
  """key [2], train_mask [N] -> [N] int32: training indices first, randomly permuted."""
  k = jax.random.fold_in(jax.random.fold_in(key, STREAM_ORDER), epoch)
  u = jax.random.uniform(k, train_mask.shape)
  return jnp.argsort(jnp.where(train_mask, u, 2.0)).astype(jnp.int32)


def _apply(model, variables, x, mask, *, train, rng=None):
  kwargs = {} if mask is None else {"mask": mask}
  if train:
    mutable = ["batch_stats"] if "batch_stats" in variables else []
    out = model.apply(variables, x, train=True, rngs={"dropout": rng}, mutable=mutable, **kwargs)
    return out if mutable else (out[0], {})
  return model.apply(variables, x, train=False, **kwargs)


def train_step_one(state: TrainState, plan, order, data, epoch, step, *, model, tx,
                   spec: StepSpec, data_sharding=None):
  """One optimizer step of one fold. Returns (state, {'loss', 'correct'} scalars)."""
  batch_size = spec.batch_size
  pos = (step * batch_size + jnp.arange(batch_size)) % jnp.maximum(plan["n_train"], 1)
  idx = order[pos]
  x = data["inputs"][idx]
  mask = data["mask"][idx] if "mask" in data else None
  # [B, K]: each clip's weights are its source dataset's row (one row unless 'per_dataset').
  weights = plan["class_weights"][data["dataset_index"][idx] if "dataset_index" in data else 0]
  if data_sharding is not None:  # data parallel within a fold ('data' mesh axis)
    x = jax.lax.with_sharding_constraint(x, data_sharding)
  key = jax.random.fold_in(jax.random.fold_in(
      jax.random.fold_in(plan["key"], STREAM_STEP), epoch), step)
  k_aug, k_mix, k_drop = jax.random.split(key, 3)
  aug = dict(spec.augment)
  x = augment_lib.augment(k_aug, x, aug, is_flow=spec.is_flow)
  targets = spec.task.targets(data, idx, spec)  # [B, K]
  if float(aug.get("mixup", 0.0)) > 0:
    x, targets, mask = augment_lib.mixup(k_mix, x, targets, mask, float(aug["mixup"]))

  def loss_fn(params):
    logits, updates = _apply(model, {"params": params, **(
        {"batch_stats": state.batch_stats} if state.batch_stats else {})}, x, mask, train=True,
                             rng=k_drop)
    return spec.task.loss(logits, targets, weights), (logits, updates)

  (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  param_updates, opt_state = tx.update(grads, state.opt_state, state.params)
  new_state = state.replace(step=state.step + 1,
                            params=optax.apply_updates(state.params, param_updates),
                            batch_stats=updates.get("batch_stats", state.batch_stats),
                            opt_state=opt_state)
  correct = spec.task.correct(logits, data, idx)
  return new_state, {"loss": loss, "correct": correct}


def train_epoch_one(state: TrainState, plan, data, epoch, *, step_fn, steps_per_epoch: int):
  """All steps of one epoch of one fold: (state, {'loss', 'correct'}: [S] each)."""
  order = epoch_order(plan["key"], plan["train_mask"], epoch)
  body = lambda s, step: step_fn(s, plan, order, data, epoch, step)
  return jax.lax.scan(body, state, jnp.arange(steps_per_epoch, dtype=jnp.int32))


def eval_one(variables, idx, data, *, model, tta_flip_h: bool = False, is_flow: bool = True,
             task: tasks_lib.Task = emotions.Emotions()):
  """Logits [nb * Be, K] of one fold's model on index blocks idx [nb, Be] (padding included).

  With tta_flip_h: the task's merge of the input's and its mirror's outputs (tta.py; u negated
  for flow), e.g. the log of the mean softmax, so a softmax of the result is the TTA probability.
  """

  def block(i):
    x = data["inputs"][i]
    mask = data["mask"][i] if "mask" in data else None
    logits_fn = lambda v: _apply(model, variables, v, mask, train=False).astype(jnp.float32)
    return task.tta_logits(logits_fn, x, is_flow) if tta_flip_h else logits_fn(x)

  logits = jax.lax.map(block, idx)
  return logits.reshape((-1, logits.shape[-1]))


class Steps(NamedTuple):
  """The compiled, fold-stacked functions of one (model, spec, mesh).

  init(keys [F, 2], sample_x [1, ...], sample_mask [1, T] | None) -> TrainState [F]
  train_epoch(state [F], plan [F], data, epoch) -> (state [F], {'loss', 'correct'}: [F, S])
  evaluate(variables [F], idx [F, nb, Be], data) -> logits [F, nb * Be, K]
  """

  tx: optax.GradientTransformation
  init: Callable
  train_epoch: Callable
  evaluate: Callable


def fold_group(spec: StepSpec, mesh) -> int | None:
  """How many of a device's stacked folds one compiled call vmaps together; None = all of them.

  A mesh that splits each fold's batch ('data' > 1): all (vmapped, sharded over 'fold' by XLA).
  Otherwise each device runs its own folds (`make_steps`: shard_map over 'fold'), and per device:
  a GPU/TPU all (one small model leaves the device idle); a CPU one at a time (a loop over its
  folds inside the call, each fold's state updated in place, see `_stacked`): a vmapped small
  network's every op then streams all folds' activations through the caches, a fold at a time
  keeps them resident, and the call still runs every fold's epoch in one dispatch.
  `config.train.fold_group` > 0 sets it.
  """
  if spec.fold_group > 0:
    return spec.fold_group
  if mesh.shape["data"] > 1 or mesh.devices.flat[0].platform != "cpu":
    return None
  return 1


def _stacked(fn, group: int | None, num_mapped: int, *, updates_first: bool = False,
             spmd_axis_name: str | None = None):
  """fn(*mapped, *shared) over the leading fold axis of its first `num_mapped` arguments:
  vmapped when `group` is None (sharded over `spmd_axis_name`, if given), else lax.map in groups
  of `group`.

  updates_first: fn returns (the new value of its first argument, the rest). A fold at a time
  (`group` 1), each fold's new value is then written over the first argument's stacked (donated)
  buffers in place, where lax.map would build a second stacked copy of it every call (Off-ApexNet,
  30 MiB of state per fold, 68 folds: epochs 14% longer with lax.map, docs/training.md).
  """
  if group is None:
    in_axes = (0,) * num_mapped + (None,) * 8
    return lambda *args: jax.vmap(fn, in_axes=in_axes[:len(args)],
                                     spmd_axis_name=spmd_axis_name)(*args)

  def mapped(*args):
    shared = args[num_mapped:]
    return jax.lax.map(lambda xs: fn(*xs, *shared), tuple(args[:num_mapped]),
                       batch_size=None if group == 1 else group)

  def in_place(first, *args):
    mapped_rest, shared = args[:num_mapped - 1], args[num_mapped - 1:]
    fold = lambda tree, i: jax.tree.map(
        lambda a: jax.lax.dynamic_index_in_dim(a, i, keepdims=False), tree)

    def body(stacked_first, i):
      new_first, rest = fn(fold(stacked_first, i), *fold(mapped_rest, i), *shared)
      return jax.tree.map(lambda a, v: jax.lax.dynamic_update_index_in_dim(a, v, i, 0),
                          stacked_first, new_first), rest
    return jax.lax.scan(body, first, jnp.arange(jax.tree.leaves(first)[0].shape[0]))

  return in_place if updates_first and group == 1 else mapped


def _per_device(fn, num_mapped: int, *, mesh):
  """fn over the 'fold' axis of `mesh`, each device running its own folds (shard_map): its first
  `num_mapped` arguments and its outputs are split over 'fold', the others replicated.

  Nothing is partitioned by XLA inside, so the CPU kernels (custom calls, microexp/kernels) run
  as on one device, where an automatically sharded vmap gathers their operands onto every
  device; and the devices run side by side (one per core, `cpu_devices.py`)."""

  def run(*args):
    in_specs = (P("fold"),) * num_mapped + (P(),) * (len(args) - num_mapped)
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=P("fold"),
                         check_vma=False)(*args)

  return run


@functools.lru_cache(maxsize=32)
def make_steps(model, spec: StepSpec, mesh) -> Steps:
  """Jitted fold-stacked functions sharded over `mesh` ('fold', 'data'); cached per argument.

  A mesh without a 'data' split (every CPU mesh, and accelerators with a fold or more each) runs
  each device's folds on it (`_per_device`); one that splits batches lets XLA shard a vmap."""
  tx = state_lib.create_optimizer(spec.optimizer, spec.steps_per_epoch)
  fold = NamedSharding(mesh, P("fold"))
  split_batch = mesh.shape["data"] > 1
  data_sharding = NamedSharding(mesh, P("data")) if split_batch else None
  step_fn = functools.partial(train_step_one, model=model, tx=tx, spec=spec,
                              data_sharding=data_sharding)
  epoch_fn = functools.partial(train_epoch_one, step_fn=step_fn,
                               steps_per_epoch=spec.steps_per_epoch)
  group = fold_group(spec, mesh)
  eval_fn = functools.partial(eval_one, model=model, tta_flip_h=spec.tta_flip_h,
                              is_flow=spec.is_flow, task=spec.task)

  def init_one(key, sample_x, sample_mask):
    return state_lib.create_train_state(model, jax.random.fold_in(key, STREAM_INIT), sample_x,
                                        sample_mask, tx)

  if split_batch:
    place, axis = (lambda fn, num_mapped: fn), "fold"
  else:
    place, axis = functools.partial(_per_device, mesh=mesh), None
  train_epoch = place(_stacked(epoch_fn, group, 2, updates_first=True, spmd_axis_name=axis), 2)
  evaluate = place(_stacked(eval_fn, group, 2, spmd_axis_name=axis), 2)
  init = place(jax.vmap(init_one, in_axes=(0, None, None)), 1)
  return Steps(tx, jax.jit(init, out_shardings=fold),
               jax.jit(train_epoch, out_shardings=fold, donate_argnums=(0,)),
               jax.jit(evaluate, out_shardings=fold))
