"""Fold-parallel (vmap over stacked folds, one jit) vs sequential (one fold at a time) throughput.

    python benchmarks/fold_parallel.py                       # flow_cnn, 8 folds, 48x48, this backend
    python benchmarks/fold_parallel.py --model=resnet50 --model_kwargs='{"stage_sizes": [1,1,1,1], "width": 16}'
    python benchmarks/fold_parallel.py --peak_tflops=1.2     # CPU: pass your peak for the MFU

Both modes run the engine's own epoch step (microexp.train.steps.make_steps, lax.scan over steps) on random data, with
the same per-fold batch size; throughput counts training samples of all folds per second. MFU =
(XLA cost-analysis flops of one fold's train step x folds / step time) / peak flops. Peaks: documented dense bf16/fp32
figures per device kind below; the CPU peak is an estimate (cores x 2 FMA x SIMD width x clock)
unless --peak_tflops is given.
"""

from __future__ import annotations

import json
import os
import time

from absl import app
from absl import flags
import jax
import numpy as np

from benchmarks import roofline
from configs import common
from microexp import models
from microexp.train import parallel
from microexp.train import steps as steps_lib

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "flow_cnn", "Registered model name.")
flags.DEFINE_string("model_kwargs", '{"features": [16, 32]}', "JSON kwargs of the model.")
flags.DEFINE_integer("folds", 8, "Number of stacked folds.")
flags.DEFINE_integer("batch_size", 16, "Per-fold batch size.")
flags.DEFINE_integer("image_size", 48, "Input height/width (3 channels: u, v, magnitude).")
flags.DEFINE_integer("steps", 10, "Steps per epoch (one jitted call, lax.scan).")
flags.DEFINE_integer("epochs", 2, "Timed epochs per mode (after one compile+warmup epoch).")
flags.DEFINE_float("peak_tflops", 0.0, "Peak TFLOP/s per device for the MFU (0: table/estimate).")

# Dense peak TFLOP/s per device (fp32 without TF32 / bf16), from the vendors' datasheets.
_PEAKS = {"H100": (67.0, 989.0), "H200": (67.0, 989.0), "A100": (19.5, 312.0),
          "TPU v4": (137.5, 275.0), "TPU v5e": (98.5, 197.0)}


def peak_flops(device) -> tuple[float, str]:
  if FLAGS.peak_tflops > 0:
    return FLAGS.peak_tflops * 1e12, "--peak_tflops"
  for name, (fp32, _) in _PEAKS.items():
    if name.lower() in device.device_kind.lower():
      return fp32 * 1e12, f"datasheet fp32 {name}"
  if device.platform == "cpu":
    cores = os.cpu_count() or 1
    # AVX2: 2 FMA units x 8 fp32 lanes x 2 flops per FMA at ~2.5 GHz per core.
    return cores * 2 * 8 * 2 * 2.5e9, f"estimate {cores} cores x 80 GFLOP/s (AVX2 FMA, 2.5 GHz)"
  return float("nan"), "unknown"


def measure(model, config, num_folds: int, epochs: int) -> dict:
  """Times `epochs` epochs of `FLAGS.steps` steps of `num_folds` stacked folds."""
  n = max(4 * FLAGS.batch_size, 64)
  rng = np.random.default_rng(0)
  data_host = {"inputs": rng.normal(size=(n, FLAGS.image_size, FLAGS.image_size, 3)).astype(
      np.float32), "labels": rng.integers(0, 5, n).astype(np.int32)}
  mesh = parallel.make_mesh(num_folds)
  length = parallel.padded_folds(num_folds, mesh)
  spec = steps_lib.StepSpec.from_config(config, steps_per_epoch=FLAGS.steps, num_classes=5)
  steps = steps_lib.make_steps(model, spec, mesh)
  keys = np.asarray(steps_lib.fold_keys(0, range(length)))
  plan = parallel.put_folds({"key": keys, "train_mask": np.ones((length, n), bool),
                             "n_train": np.full(length, n, np.int32),
                             "class_weights": np.ones((length, 1, 5), np.float32)}, mesh)
  data = parallel.put_replicated(data_host, mesh)
  state = steps.init(plan["key"], data_host["inputs"][:1], None)
  # One fold's step (roofline.train_step_cost) times the folds: the epoch call's cost analysis
  # counts the scan body once, so dividing it by the step count undercounted by that count.
  flops = num_folds * roofline.train_step_cost(model, spec, steps.tx, state, plan, data)["flops"]
  state, m = steps.train_epoch(state, plan, data, 0)
  jax.block_until_ready(m)
  t0 = time.perf_counter()
  for e in range(1, epochs + 1):
    state, m = steps.train_epoch(state, plan, data, e)
  jax.block_until_ready((state, m))
  dt = (time.perf_counter() - t0) / (epochs * FLAGS.steps)
  return {"step_s": dt, "samples_per_s": num_folds * FLAGS.batch_size / dt, "flops": flops,
          "padded_folds": length}


def main(argv):
  del argv
  from microexp.train import cpu_devices  # pylint: disable=g-import-not-at-top
  cpu_devices.configure(cpu_devices.count())  # as main.py: one device per core by default
  config = common.casme2_config(classes="5", synthetic=False)
  config.train.batch_size = FLAGS.batch_size
  config.train.augment.update({"flip_h": True, "crop": 2})
  model = models.get(FLAGS.model, num_classes=5, **{
      k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(FLAGS.model_kwargs).items()})
  device = jax.devices()[0]
  peak, peak_src = peak_flops(device)
  with jax.threefry_partitionable(False):
    par = measure(model, config, FLAGS.folds, FLAGS.epochs)
    seq = measure(model, config, 1, FLAGS.epochs)
  # Sequential training of F folds = F times the single-fold step.
  seq_rate = seq["samples_per_s"]
  print(f"backend {device.platform} ({device.device_kind}) x{jax.device_count()}; model "
        f"{FLAGS.model} {FLAGS.model_kwargs}; {FLAGS.folds} folds, batch {FLAGS.batch_size}/fold, "
        f"{FLAGS.image_size}x{FLAGS.image_size}x3")
  for name, r, folds in (("fold-parallel", par, FLAGS.folds), ("sequential", seq, 1)):
    mfu = r["flops"] / r["step_s"] / (peak * jax.device_count())
    print(f"  {name:13s}: {r['samples_per_s']:9.1f} samples/s  step {1e3 * r['step_s']:8.1f} ms "
          f"({folds} fold(s), padded {r['padded_folds']})  {r['flops'] / 1e9:.3f} GFLOP/step  "
          f"MFU {100 * mfu:.2f}%")
  print(f"  ratio fold-parallel / sequential: {par['samples_per_s'] / seq_rate:.2f}x   "
        f"(peak {peak / 1e12:.2f} TFLOP/s per device: {peak_src})")


if __name__ == "__main__":
  app.run(main)
