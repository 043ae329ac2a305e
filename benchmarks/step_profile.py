"""Where the engine's train step spends its time: the same epoch step with one component removed
at a time (an ablation profile), on the configs/ststnet_megc.py recipe.

    python benchmarks/step_profile.py                  # STSTNet, batch 32, 28x28x3, 14 steps
    python benchmarks/step_profile.py --folds=8 --repeats=7

Rows (each its own compiled `steps.train_epoch`, all compiled first, then their epochs alternated,
medians of --repeats epochs):
  full            the recipe as shipped (flip_h, crop 2, rotation 8, mixup 0.2; BN + dropout;
                  AdamW with warmup-cosine; class-balanced label-smoothed CE)
  -rotation       without the rotation
  -augment        without any augmentation (no flip, crop, rotation, mixup)
  -augment -bn/do the bare network (no BatchNorm, no dropout) and no augmentation
  -... sgd        and plain SGD at a constant rate instead of AdamW + schedule
The difference between rows is what a component costs. ms per step = per fold-step; with
--folds > 1 the folds are stacked and the figure is divided by the fold count.

    python benchmarks/step_profile.py --trace           # per-op profile of the full step instead
    python benchmarks/step_profile.py --trace --top=30  # and its 30 costliest XLA ops
    python benchmarks/step_profile.py --trace --model=offapexnet   # another roofline.py row
    python benchmarks/step_profile.py --trace --folds=68   # 68 stacked folds (per fold-step)

`--trace`: a `jax.profiler` trace of a few epochs of the full step (--model: the config, input
and batch of a benchmarks/roofline.py row; default ststnet, configs/ststnet_megc.py); every XLA op's time (summed
over XLA's threads) is attributed to the Python source of its HLO ops (the compiled module's stack
frames: flax BatchNorm / Dropout / pooling / linear, optax, augment.py, steps.py) and printed per
component. Needs TensorFlow's xplane protobuf (tensorflow is in requirements-test).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import jax
import numpy as np


def _config():
  from configs import ststnet_megc  # pylint: disable=g-import-not-at-top
  return ststnet_megc.get_config()


def setup_step(config, model_kwargs: dict, *, folds: int, steps: int, n: int = 442) -> list:
  """[steps, state, plan, data] of the engine's epoch step for `config` on random flow."""
  from microexp import models  # pylint: disable=g-import-not-at-top
  from microexp.train import parallel  # pylint: disable=g-import-not-at-top
  from microexp.train import steps as steps_lib  # pylint: disable=g-import-not-at-top

  model = models.get("ststnet", num_classes=3, **model_kwargs)
  rng = np.random.default_rng(0)
  size = 28
  data_host = {"inputs": rng.normal(size=(n, size, size, 3)).astype(np.float32),
               "labels": rng.integers(0, 3, n).astype(np.int32),
               "dataset_index": rng.integers(0, 3, n).astype(np.int32)}
  mesh = parallel.make_mesh(folds)
  length = parallel.padded_folds(folds, mesh)
  spec = steps_lib.StepSpec.from_config(config, steps_per_epoch=steps, num_classes=3)
  st = steps_lib.make_steps(model, spec, mesh)
  plan = parallel.put_folds({"key": np.asarray(steps_lib.fold_keys(0, range(length))),
                             "train_mask": rng.random((length, n)) < 0.98,
                             "n_train": np.full(length, int(0.98 * n), np.int32),
                             "class_weights": np.ones((length, 3, 3), np.float32)}, mesh)
  data = parallel.put_replicated(data_host, mesh)
  return [st, st.init(plan["key"], data_host["inputs"][:1], None), plan, data]


def _category(chain) -> str:
  """Component of one HLO op from its stack (innermost frame first): (file, function)."""
  rng = any("random.py" in f or "prng.py" in f for f, _ in chain)
  for f, fn in chain:
    if "augment.py" in f:
      return ("mixup" if fn == "mixup" else "augmentation") + (" (rng)" if rng else "")
    if "normalization.py" in f or "batch_norm.py" in f:
      return "batchnorm"
    if "stochastic.py" in f or "models/dropout.py" in f:
      return "dropout (mask rng + apply)"
    if "pooling.py" in f or fn.endswith("_pool") or fn.startswith("_pool_"):
      return "pooling"
    if "linear.py" in f or "lowering.py" in f:
      return "conv / dense"
    if "/optax/losses" in f:
      return "loss"
    if "/optax/" in f or "state.py" in f:
      return "optimizer"
    if "/models/" in f:
      return "model (relu, concat, reshape)"
    if "steps.py" in f:
      return {"epoch_order": "epoch order", "weighted_cross_entropy": "loss"}.get(
          fn, "step (batch gather, keys, metrics)")
  return "other (scan carry, copies)"


def trace_breakdown(model_name: str = "ststnet", *, steps: int = 14, epochs: int = 5,
                    folds: int = 1) -> tuple[dict, list]:
  """({component: ms per step}, [(XLA op, component, ms per step)] costliest first) of the
  engine's full step of `model_name` (a roofline.MODELS row: its config, input and batch), from a
  jax.profiler trace; with `folds` > 1 the folds are stacked and the times are per fold-step."""
  import collections  # pylint: disable=g-import-not-at-top
  import glob  # pylint: disable=g-import-not-at-top
  import re  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top
  from benchmarks import roofline  # pylint: disable=g-import-not-at-top
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=g-import-not-at-top

  _, _, st, plan, data, state = roofline._setup(  # pylint: disable=protected-access
      model_name, roofline.MODELS[model_name], folds, steps)
  hlo = st.train_epoch.lower(state, plan, data, 0).compile().as_text()
  state, m = st.train_epoch(state, plan, data, 0)
  jax.block_until_ready(m)
  with tempfile.TemporaryDirectory() as tmp:
    jax.profiler.start_trace(tmp)
    for e in range(1, epochs + 1):
      state, m = st.train_epoch(state, plan, data, e)
    jax.block_until_ready((state, m))
    jax.profiler.stop_trace()
    space = xplane_pb2.XSpace()
    space.ParseFromString(open(glob.glob(f"{tmp}/**/*.xplane.pb", recursive=True)[0], "rb").read())

  def table(title):
    body = re.search(r"^" + title + r"\n(.*?)(?:\n\n|\n[A-Z][A-Za-z]+\n)", hlo, re.S | re.M)
    return {int(l.split(" ", 1)[0]): l.split(" ", 1)[1] for l in body.group(1).splitlines()
            if l.strip()}
  files = {k: v.strip('"') for k, v in table("FileNames").items()}
  funcs = {k: v.strip('"') for k, v in table("FunctionNames").items()}
  locs = {k: dict(re.findall(r"(\w+)=(\d+)", v)) for k, v in table("FileLocations").items()}
  frames = {k: dict(re.findall(r"(\w+)=(\d+)", v)) for k, v in table("StackFrames").items()}

  def chain(fid):
    out, seen = [], set()
    while fid in frames and fid not in seen:
      seen.add(fid)
      loc = locs[int(frames[fid]["file_location_id"])]
      out.append((files[int(loc["file_name_id"])], funcs[int(loc["function_name_id"])]))
      fid = int(frames[fid].get("parent_frame_id", 0))
    return out

  own, inside, calls, comp = collections.defaultdict(list), collections.defaultdict(list), {}, None
  for line in hlo.splitlines():
    if line and not line.startswith(" ") and line.rstrip().endswith("{"):
      comp = re.match(r"^(?:ENTRY )?%?([\w.\-]+)", line).group(1)
      continue
    op = re.match(r"^\s*(?:ROOT )?%?([\w.\-]+) = ", line)
    if not op:
      continue
    called = re.search(r"calls=%?([\w.\-]+)", line)
    if called:
      calls[op.group(1)] = called.group(1)
    frame = re.search(r"stack_frame_id=(\d+)", line)
    if frame:
      own[op.group(1)].append(int(frame.group(1)))
      inside[comp].append(int(frame.group(1)))

  def component(op):
    ids = own.get(op, []) + inside.get(calls.get(op, ""), [])
    votes = collections.Counter(_category(chain(i)) for i in ids)
    for c, _ in votes.most_common():
      if not c.startswith("other"):
        return c
    return "other (scan carry, copies)"

  total, per_op = collections.Counter(), collections.Counter()
  for plane in space.planes:
    names = {k: v.name for k, v in plane.event_metadata.items()}
    for line in plane.lines:
      if "XLAEigen" not in line.name and "PjRtCpuClient" not in line.name:
        continue
      for ev in line.events:
        name = names.get(ev.metadata_id, "?")
        if name.startswith(("ThunkExecutor", "end:", "while")):
          continue  # containers of the ops counted below
        total[component(name)] += ev.duration_ps / 1e9
        per_op[name] += ev.duration_ps / 1e9
  scale = 1.0 / (steps * epochs * folds)
  ops = [(name, component(name), ms * scale) for name, ms in per_op.most_common()]
  return {c: ms * scale for c, ms in total.most_common()}, ops


def variants():
  """(name, config, model kwargs) of the ablation rows."""
  out = []
  full = _config()
  out.append(("full", full, {"batch_norm": True, "dropout": 0.5}))
  c = _config()
  c.train.augment.rotation = 0.0
  out.append(("-rotation", c, {"batch_norm": True, "dropout": 0.5}))
  c = _config()
  c.train.augment.update({"flip_h": False, "crop": 0, "rotation": 0.0, "mixup": 0.0})
  out.append(("-augment", c, {"batch_norm": True, "dropout": 0.5}))
  out.append(("-augment -bn/do", c, {}))
  c = _config()
  c.train.augment.update({"flip_h": False, "crop": 0, "rotation": 0.0, "mixup": 0.0})
  c.train.optimizer, c.train.schedule, c.train.warmup_epochs = "sgd", "constant", 0.0
  c.train.weight_decay, c.train.grad_clip = 0.0, 0.0
  out.append(("-augment -bn/do sgd", c, {}))
  return out


def main(argv=None) -> list[tuple[str, float]]:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--folds", type=int, default=1)
  p.add_argument("--steps", type=int, default=14)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--only", default="", help="comma-separated row names (default: all)")
  p.add_argument("--trace", action="store_true", help="per-op profile of the full step")
  p.add_argument("--model", default="ststnet",
                 help="--trace: a benchmarks/roofline.py MODELS row (config, input, batch)")
  p.add_argument("--top", type=int, default=0, help="--trace: also list the N costliest XLA ops")
  args = p.parse_args(argv)
  from microexp.train import cpu_devices  # pylint: disable=g-import-not-at-top
  cpu_devices.configure(cpu_devices.count())  # as main.py: one device per core by default
  if args.trace:
    with jax.threefry_partitionable(False):
      parts, ops = trace_breakdown(args.model, steps=args.steps, folds=args.folds)
    print("| component (op time summed over XLA's threads) | ms per step | share |\n|---|---:|---:|")
    for c, ms in parts.items():
      print(f"| {c} | {ms:.2f} | {100 * ms / sum(parts.values()):.0f}% |")
    print(f"| total | {sum(parts.values()):.2f} | |")
    if args.top:
      print(f"\n| XLA op ({args.top} costliest) | component | ms per step |\n|---|---|---:|")
      for name, c, ms in ops[:args.top]:
        print(f"| {name} | {c} | {ms:.3f} |")
    return list(parts.items())
  only = {s.strip() for s in args.only.split(",") if s.strip()}
  with jax.threefry_partitionable(False):
    setups = {name: setup_step(config, kwargs, folds=args.folds, steps=args.steps)
              for name, config, kwargs in variants() if not only or name in only}
    from benchmarks import roofline  # pylint: disable=g-import-not-at-top

    times = roofline.interleaved_fold_step_s(setups, steps=args.steps, folds=args.folds,
                                             repeats=args.repeats)
  rows = list(times.items())
  for name, dt in rows:
    print(f"  {name:22s} {1e3 * dt:8.2f} ms per fold-step", flush=True)
  print(f"| step ({args.folds} fold(s), {args.steps} steps/epoch, batch 32, 28x28x3) | ms |")
  print("|---|---:|")
  for name, dt in rows:
    print(f"| {name} | {1e3 * dt:.2f} |")
  return rows


if __name__ == "__main__":
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
  main()
