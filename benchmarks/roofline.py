"""The engine's train step of every model of the zoo against this machine's roofline.

    python benchmarks/roofline.py                               # all models, 1, 8 and 68 folds
    python benchmarks/roofline.py --models=ststnet,offapexnet --folds=1,8 --out=/tmp/roofline.md
    python benchmarks/roofline.py --budget_s=5                   # skip fold counts that would take longer

Per model, at the input size and batch of its config (`MODELS`; the full ResNet50 and the
sequence models are capped for a 2-core CPU, the table says so):
- XLA's cost analysis of ONE train step of one fold (`jax.jit(step).lower(...).compile()
  .cost_analysis()`: flops, bytes accessed), the engine's own `steps.train_step_one`
  (augmentation, model, loss, optimizer; the config's augmentation and optimizer);
- the measured time per fold-step of the engine's epoch call (`steps.make_steps(...).train_epoch`,
  `--steps` steps under `lax.scan`): sequential (one fold per call, as `fold_parallel=False`
  trains) and stacked (`--folds` folds in one call, as `fold_parallel=True` trains), medians of
  `--repeats` calls after a compile + warm-up call, the sequential and every stacked call of a
  model alternated (`interleaved_fold_step_s`) so that their ratios see the same machine;
- achieved GFLOP/s, the flop bound (flops / the peak flop rate) and measured / flop bound, with
  the peaks measured in the same run (a 2048^3 float32 matmul, a 256 MiB copy); and XLA's bytes
  at the copy rate, beside it. That is not a bound: XLA's "bytes accessed" counts every operand
  of every fusion as if it came from memory (re-reads that hit the caches too; nothing inside a
  custom call), so for the models whose fusions share inputs it exceeds the measured time (the
  sequence models: 2-3x). The flop bound is the one that holds.
A stacked fold count whose estimated time exceeds `--budget_s` is skipped (shown as '-').
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import pathlib
import statistics
import sys
import time

import numpy as np


@dataclasses.dataclass(frozen=True)
class ModelCase:
  """A zoo model at its config's size: config module, input shape of one clip, batch."""

  config: str  # configs/<config>.py
  shape: tuple[int, ...]  # one clip: (H, W, C) or (T, H, W, C)
  batch: int
  kwargs: tuple = ()  # model kwargs overriding the config's
  note: str = ""


MODELS = {
    "ststnet": ModelCase("ststnet_megc", (28, 28, 3), 32),
    "offapexnet": ModelCase("offapexnet_megc", (28, 28, 3), 32),
    "htnet": ModelCase("htnet_megc", (28, 28, 3), 256),
    "flow_cnn": ModelCase("flow_cnn", (112, 112, 3), 32),
    "resnet_reduced": ModelCase("resnet_megc", (64, 64, 3), 16,
                                kwargs=(("stage_sizes", (1, 1, 1, 1)),),
                                note="one bottleneck per stage, 64x64 (protocol.py's CPU ResNet)"),
    "resnet50": ModelCase("resnet_megc", (64, 64, 3), 8,
                          note="full ResNet50 capped at 64x64, batch 8 (config: 112x112, 32)"),
    "convlstm": ModelCase("convlstm_loso", (6, 64, 64, 3), 16),
    "cnn_lstm": ModelCase("cnn_lstm_flow", (8, 64, 64, 3), 16,
                          note="8 frames (config: 32)"),
}


def measure_peaks(repeats: int = 3, *, n: int = 2048, copy_mib: int = 256) -> dict:
  """This machine's float32 matmul rate (n^3 under jit) and copy bandwidth (a `copy_mib` MiB
  x + 1: read + write), best of `repeats`."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  a = jnp.ones((n, n), jnp.float32)
  mm = jax.jit(lambda x: x @ x)
  mm(a).block_until_ready()
  t_mm = min(_timed(lambda: mm(a).block_until_ready()) for _ in range(repeats))
  big = jnp.ones((copy_mib * 2**18,), jnp.float32)
  cp = jax.jit(lambda x: x + 1.0)
  cp(big).block_until_ready()
  t_cp = min(_timed(lambda: cp(big).block_until_ready()) for _ in range(repeats))
  return {"flops": 2 * n**3 / t_mm, "bytes": 2 * big.nbytes / t_cp}


def _timed(fn) -> float:
  t0 = time.perf_counter()
  fn()
  return time.perf_counter() - t0


def _setup(name: str, case: ModelCase, folds: int, steps: int, *, num_classes: int = 3):
  """Model, StepSpec, compiled steps, placed plan/data and initial state for `folds` folds."""
  import importlib  # pylint: disable=g-import-not-at-top
  from microexp.models import builder  # pylint: disable=g-import-not-at-top
  from microexp.train import parallel  # pylint: disable=g-import-not-at-top
  from microexp.train import steps as steps_lib  # pylint: disable=g-import-not-at-top

  config = importlib.import_module(f"configs.{case.config}").get_config()
  config.model.kwargs.update(dict(case.kwargs))
  if "weights" in config.model.kwargs:
    config.model.kwargs.weights = None
  config.train.batch_size = case.batch
  model = builder.from_config(config, num_classes, pretrained=False)
  n = 4 * case.batch
  rng = np.random.default_rng(0)
  host = {"inputs": rng.normal(size=(n,) + case.shape).astype(np.float32),
          "labels": rng.integers(0, num_classes, n).astype(np.int32)}
  if len(case.shape) == 4:
    host["mask"] = np.ones((n, case.shape[0]), bool)
  mesh = parallel.make_mesh(folds)
  length = parallel.padded_folds(folds, mesh)
  spec = steps_lib.StepSpec.from_config(config, steps_per_epoch=steps, num_classes=num_classes)
  st = steps_lib.make_steps(model, spec, mesh)
  plan = parallel.put_folds({"key": np.asarray(steps_lib.fold_keys(0, range(length))),
                             "train_mask": np.ones((length, n), bool),
                             "n_train": np.full(length, n, np.int32),
                             "class_weights": np.ones((length, 1, num_classes), np.float32)},
                            mesh)
  data = parallel.put_replicated(host, mesh)
  state = st.init(plan["key"], host["inputs"][:1], host["mask"][:1] if "mask" in host else None)
  return model, spec, st, plan, data, state


# Models whose conv -> ReLU -> max-pool blocks run as CPU kernels under 'auto' (microexp/kernels).
KERNEL_MODELS = ("ststnet", "offapexnet")


def step_cost(name: str, case: ModelCase) -> dict:
  """XLA cost analysis of one train step of one fold: {'flops', 'bytes'}. XLA counts nothing
  inside a custom call, so a model whose layers run as CPU kernels is costed as its 'matmul'
  twin: the same layers and arithmetic in XLA ops (its bytes: what those ops would move)."""
  if name in KERNEL_MODELS:
    case = dataclasses.replace(case, kwargs=tuple(case.kwargs) + (("conv_impl", "matmul"),))
  model, spec, st, plan, data, state = _setup(name, case, 1, 1)
  return train_step_cost(model, spec, st.tx, state, plan, data)


def train_step_cost(model, spec, tx, state, plan, data) -> dict:
  """{'flops', 'bytes'} of ONE `steps.train_step_one` of the first fold of stacked `state` /
  `plan`, jitted alone: an epoch call's own figure is no use, XLA counts the body of a while loop
  (the scan over steps, the lax.map over stacked folds) once, not once per trip."""
  import jax  # pylint: disable=g-import-not-at-top
  from microexp.train import steps as steps_lib  # pylint: disable=g-import-not-at-top

  one = lambda tree: jax.tree.map(lambda x: x[0], tree)
  step = functools.partial(steps_lib.train_step_one, model=model, tx=tx, spec=spec)

  def fn(state, plan, data):
    order = steps_lib.epoch_order(plan["key"], plan["train_mask"], 0)
    return step(state, plan, order, data, 0, 0)

  cost = jax.jit(fn).lower(one(state), one(plan), data).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return {"flops": float(cost.get("flops", np.nan)),
          "bytes": float(cost.get("bytes accessed", np.nan))}


def interleaved_fold_step_s(setups: dict, *, steps: int, folds, repeats: int) -> dict:
  """{row: median seconds per fold-step} of `setups` ({row: [steps, state, plan, data]}), each
  compiled and warmed up first, then their epochs alternated (the order reversed every other
  round), so that a drift of the machine's speed hits every row alike. `folds`: the stacked fold
  count of every row, or {row: its count}."""
  import jax  # pylint: disable=g-import-not-at-top

  epoch = 0
  for setup in setups.values():
    st, state, plan, data = setup
    state, m = st.train_epoch(state, plan, data, epoch)
    jax.block_until_ready(m)
    setup[1] = state
  times = {name: [] for name in setups}
  for r in range(repeats):
    epoch += 1
    for name in (list(setups) if r % 2 == 0 else list(setups)[::-1]):
      st, state, plan, data = setups[name]
      start = time.perf_counter()
      state, m = st.train_epoch(state, plan, data, epoch)
      jax.block_until_ready((state, m))
      times[name].append(time.perf_counter() - start)
      setups[name][1] = state
  count = folds if isinstance(folds, dict) else dict.fromkeys(setups, folds)
  return {name: statistics.median(t) / (steps * count[name]) for name, t in times.items()}


def _timed_setup(name: str, case: ModelCase, folds: int, steps: int) -> list:
  """[steps, state, plan, data] of `folds` stacked folds, for `interleaved_fold_step_s`."""
  _, _, st, plan, data, state = _setup(name, case, folds, steps)
  return [st, state, plan, data]


def run(models, fold_counts, *, steps: int, repeats: int, budget_s: float, log=print,
        peaks: dict | None = None) -> dict:
  """Peaks (measured unless given), then per model: cost, sequential and stacked times.
  Returns {'peaks', 'rows', 'fold_counts'}; `models` are names of MODELS or ModelCases."""
  import jax  # pylint: disable=g-import-not-at-top

  with jax.threefry_partitionable(False):
    peaks = peaks or measure_peaks()
    log(f"peaks: matmul {peaks['flops'] / 1e9:.1f} GFLOP/s, copy {peaks['bytes'] / 1e9:.2f} GB/s")
    rows = []
    for name in models:
      name, case = (name, MODELS[name]) if isinstance(name, str) else name
      cost = step_cost(name, case)
      setups, counts = {1: _timed_setup(name, case, 1, steps)}, {1: 1}
      seq = interleaved_fold_step_s(setups, steps=steps, folds=1, repeats=1)[1]  # for the budget
      t_flop, t_mem = cost["flops"] / peaks["flops"], cost["bytes"] / peaks["bytes"]
      for f in fold_counts:
        estimate = f * seq * steps * (repeats + 2)
        if estimate > budget_s:
          log(f"  {name}: {f} folds skipped (~{estimate:.0f} s > --budget_s={budget_s:g})")
          continue
        setups[f"stacked {f}"] = _timed_setup(name, case, f, steps)
        counts[f"stacked {f}"] = f
      # Sequential and every stacked count alternated: the ratios see the same machine.
      times = interleaved_fold_step_s(setups, steps=steps, folds=counts, repeats=repeats)
      seq = times.pop(1)
      row = {"model": name, "input": f"{case.batch} x {'x'.join(map(str, case.shape))}",
             "note": case.note, **cost, "flop_bound_s": t_flop, "xla_bytes_s": t_mem,
             "sequential_s": seq,
             "stacked_s": {counts[k]: t for k, t in times.items()}}
      rows.append(row)
      log(f"  {name}: {1e3 * seq:.2f} ms per step sequential, flop bound "
          f"{1e3 * t_flop:.3f} ms; stacked " + ", ".join(
              f"{f}: {1e3 * t:.2f}" for f, t in row["stacked_s"].items()))
  return {"peaks": peaks, "rows": rows, "fold_counts": list(fold_counts)}


def format_table(result: dict) -> str:
  """Markdown table: one row per model, stacked figures per fold count."""
  peaks, folds = result["peaks"], result["fold_counts"]
  head = ["model", "batch x clip", "GFLOP/step", "XLA MB/step", "flop bound ms",
          "XLA MB / copy ms", "seq ms", "GFLOP/s", "seq / flop bound"] + [
              f"{f} stacked ms/fold (seq/stacked)" for f in folds]
  impl = result.get("conv_impl") or "each config's ('auto')"
  lines = [f"Peaks measured in this run: matmul {peaks['flops'] / 1e9:.1f} GFLOP/s, copy "
           f"{peaks['bytes'] / 1e9:.2f} GB/s. Times per fold-step. conv_impl: {impl}.", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in result["rows"]:
    seq = r["sequential_s"]
    cells = [r["model"] + (f" ({r['note']})" if r["note"] else ""), r["input"],
             f"{r['flops'] / 1e9:.4f}", f"{r['bytes'] / 1e6:.1f}",
             f"{1e3 * r['flop_bound_s']:.3f}", f"{1e3 * r['xla_bytes_s']:.1f}",
             f"{1e3 * seq:.2f}", f"{r['flops'] / seq / 1e9:.2f}",
             f"{seq / r['flop_bound_s']:.1f}x"]
    for f in folds:
      t = r["stacked_s"].get(f)
      cells.append("-" if t is None else f"{1e3 * t:.2f} ({seq / t:.2f}x)")
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--models", default=",".join(MODELS), help="subset of " + ",".join(MODELS))
  p.add_argument("--folds", default="1,8,68", help="stacked fold counts")
  p.add_argument("--steps", type=int, default=4, help="steps per epoch call")
  p.add_argument("--repeats", type=int, default=3, help="timed calls per figure (median)")
  p.add_argument("--budget_s", type=float, default=30.0,
                 help="skip a stacked fold count whose estimated time exceeds this")
  p.add_argument("--conv_impl", default="",
                 help="every model's conv_impl (microexp.models.lowering.IMPLS; default: each "
                      "config's, 'auto'): e.g. 'matmul' on a GPU to check the per-backend choice")
  p.add_argument("--out", default="", help="also write the table (markdown) here")
  return p.parse_args(argv)


def main(argv=None) -> dict:
  args = parse_args(argv)
  models = [m.strip() for m in args.models.split(",") if m.strip()]
  unknown = [m for m in models if m not in MODELS]
  if unknown:
    raise SystemExit(f"--models: unknown {unknown}; choose from {','.join(MODELS)}.")
  folds = [int(f) for f in args.folds.split(",") if f.strip()]
  if args.conv_impl:
    from microexp.models import lowering  # pylint: disable=g-import-not-at-top
    lowering.check_impl(args.conv_impl)
    models = [(m, dataclasses.replace(MODELS[m], kwargs=tuple(MODELS[m].kwargs) + (
        ("conv_impl", args.conv_impl),))) for m in models]
  from microexp.train import cpu_devices  # pylint: disable=g-import-not-at-top
  cpu_devices.configure(cpu_devices.count())  # as main.py: one device per core by default
  result = run(models, folds, steps=args.steps, repeats=args.repeats, budget_s=args.budget_s)
  result["conv_impl"] = args.conv_impl
  table = format_table(result)
  print(table, flush=True)
  if args.out:
    pathlib.Path(args.out).write_text(table + "\n")
  result["table"] = table
  return result


if __name__ == "__main__":
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the repo, when not installed
  main()
