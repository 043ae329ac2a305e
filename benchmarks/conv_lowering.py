"""Library convolution ('xla') vs patches + matmul ('matmul'), per layer and per model, fwd+bwd.

    python benchmarks/conv_lowering.py                        # layers and models, 1/8/68 folds
    python benchmarks/conv_lowering.py --what=layers --folds=1,8
    python benchmarks/conv_lowering.py --what=models --models=ststnet,offapexnet

Each row is one jitted forward + backward (gradients wrt the input and the parameters) of one layer
(conv, or pool) or one model (train mode: BatchNorm batch statistics, dropout), for one fold or
vmapped over stacked folds (each fold its own parameters and data, as the engine stacks folds).
Printed: median ms over repeats (after a compile + warm-up call) for both implementations and
their ratio xla / matmul (> 1: the matmul form is faster). The layer shapes are those of the
zoo's configs (STSTNet, Off-ApexNet, the flow CNN, HTNet, the reduced ResNet at 64x64, and a few
wide ResNet50 layers at 224x224 that bound `lowering.AUTO_MAX_*`).
"""

from __future__ import annotations

import functools
import json
import time

from absl import app
from absl import flags
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from microexp import models
from microexp.models import lowering

FLAGS = flags.FLAGS
flags.DEFINE_list("what", ["layers", "models"], "What to time: layers, models.")
flags.DEFINE_list("folds", ["1", "8", "68"], "Fold counts (1: no vmap; n: vmapped over n folds).")
flags.DEFINE_list("models", ["ststnet", "offapexnet", "flow_cnn", "htnet", "resnet50"],
                  "Models to time (config sizes, see MODELS).")
flags.DEFINE_string("only", "", "Only the layers whose name contains this.")
flags.DEFINE_float("min_time", 0.3, "Seconds of repeats per measurement (at least 3 repeats).")
flags.DEFINE_float("max_cost", 3e9, "Skip a fold count whose fwd+bwd flops exceed this "
                   "(68 folds of the wide layers would take minutes).")
flags.DEFINE_string("json", "", "Also write the rows here.")

# (name, batch, H, W, cin, cout, kernel, stride, padding) of the zoo's convolutions at config size;
# cin <= 3: a first layer (gradient wrt the kernel only).
CONVS = [
    ("ststnet conv 3x3 3->8", 32, 28, 28, 3, 8, 3, 1, "SAME"),
    ("ststnet conv 3x3 3->16 (3 streams)", 32, 28, 28, 3, 16, 3, 1, "SAME"),
    ("offapexnet conv1 5x5 1->6", 32, 28, 28, 1, 6, 5, 1, "SAME"),
    ("offapexnet conv2 5x5 6->16", 32, 14, 14, 6, 16, 5, 1, "SAME"),
    ("flow_cnn(synthetic) 3x3 3->16 @48", 16, 48, 48, 3, 16, 3, 1, "SAME"),
    ("flow_cnn(synthetic) 3x3 16->32 @24", 16, 24, 24, 16, 32, 3, 1, "SAME"),
    ("flow_cnn(synthetic) 3x3 32->64 @12", 16, 12, 12, 32, 64, 3, 1, "SAME"),
    ("flow_cnn 3x3 3->32 @112", 32, 112, 112, 3, 32, 3, 1, "SAME"),
    ("flow_cnn 3x3 32->64 @56", 32, 56, 56, 32, 64, 3, 1, "SAME"),
    ("flow_cnn 3x3 64->128 @28", 32, 28, 28, 64, 128, 3, 1, "SAME"),
    ("htnet(synthetic) patch 7x7/7 3->16", 32, 28, 28, 3, 16, 7, 7, "VALID"),
    ("htnet(synthetic) aggregate 3x3 16->32 @4", 32, 4, 4, 16, 32, 3, 1, ((1, 1), (1, 1))),
    ("htnet patch 7x7/7 3->256", 32, 28, 28, 3, 256, 7, 7, "VALID"),
    ("htnet aggregate0 3x3 256->512 @4", 32, 4, 4, 256, 512, 3, 1, ((1, 1), (1, 1))),
    ("htnet aggregate1 3x3 512->1024 @2", 32, 2, 2, 512, 1024, 3, 1, ((1, 1), (1, 1))),
    ("resnet(reduced) init 7x7/2 3->16 @64", 16, 64, 64, 3, 16, 7, 2, ((3, 3), (3, 3))),
    ("resnet(reduced) 1x1 16->16 @16", 16, 16, 16, 16, 16, 1, 1, "VALID"),
    ("resnet(reduced) 3x3 16->16 @16", 16, 16, 16, 16, 16, 3, 1, ((1, 1), (1, 1))),
    ("resnet(reduced) 1x1/2 64->32 @16", 16, 16, 16, 64, 32, 1, 2, "VALID"),
    ("resnet(reduced) 3x3 32->32 @8", 16, 8, 8, 32, 32, 3, 1, ((1, 1), (1, 1))),
    ("resnet(reduced) 3x3 128->128 @2", 16, 2, 2, 128, 128, 3, 1, ((1, 1), (1, 1))),
    ("resnet(reduced) 1x1 128->512 @2", 16, 2, 2, 128, 512, 1, 1, "VALID"),
    ("resnet50 init 7x7/2 3->64 @224", 8, 224, 224, 3, 64, 7, 2, ((3, 3), (3, 3))),
    ("resnet50 3x3 64->64 @56", 8, 56, 56, 64, 64, 3, 1, ((1, 1), (1, 1))),
    ("resnet50 3x3 128->128 @28", 8, 28, 28, 128, 128, 3, 1, ((1, 1), (1, 1))),
    ("resnet50 3x3 256->256 @14", 8, 14, 14, 256, 256, 3, 1, ((1, 1), (1, 1))),
    ("resnet50 3x3 512->512 @7", 8, 7, 7, 512, 512, 3, 1, ((1, 1), (1, 1))),
    ("resnet50 1x1 256->64 @56", 8, 56, 56, 256, 64, 1, 1, "VALID"),
]
# (name, batch, H, W, C, kind, window, stride, padding)
POOLS = [
    ("ststnet maxpool 3/3 SAME", 32, 28, 28, 16, "max", 3, 3, "SAME"),
    ("ststnet avgpool 2/2", 32, 10, 10, 16, "avg", 2, 2, "VALID"),
    ("offapexnet maxpool 2/2 @28", 32, 28, 28, 6, "max", 2, 2, "SAME"),
    ("flow_cnn maxpool 2/2 @112", 32, 112, 112, 32, "max", 2, 2, "SAME"),
]
# Models at their configs' sizes: (kwargs, per-fold input shape).
MODELS = {
    "ststnet": ({"batch_norm": True, "dropout": 0.5}, (32, 28, 28, 3)),
    "offapexnet": ({"dropout": 0.5}, (32, 28, 28, 2)),
    "flow_cnn": ({"features": (16, 32, 64), "dropout": 0.2}, (16, 48, 48, 3)),  # :synthetic
    "htnet": ({"dim": 16, "heads": 2, "block_repeats": (1, 1, 2)}, (32, 28, 28, 3)),  # :synthetic
    "resnet50": ({"stage_sizes": (1, 1, 1, 1), "width": 16}, (16, 64, 64, 3)),  # reduced, 64x64
    "convlstm": ({"stem_features": (16,), "lstm_features": (16, 32), "dropout": 0.5,
                  "head_pool": "mean_max"}, (8, 6, 32, 32, 3)),  # convlstm_loso, 6 frames
}


def _median_ms(fns: dict, *args) -> dict:
  """Median ms of each `fns[impl](*args)`, the implementations called in turn (so that a load
  changing on this shared machine hits them alike), after one compile + warm-up call each."""
  for fn in fns.values():
    jax.block_until_ready(fn(*args))
  times, start = {impl: [] for impl in fns}, time.perf_counter()
  while len(times[next(iter(fns))]) < 3 or time.perf_counter() - start < FLAGS.min_time:
    for impl, fn in fns.items():
      t = time.perf_counter()
      jax.block_until_ready(fn(*args))
      times[impl].append(time.perf_counter() - t)
  return {impl: 1e3 * float(np.median(t)) for impl, t in times.items()}


def _stack(folds: int, tree):
  return tree if folds == 1 else jax.tree.map(lambda v: jnp.broadcast_to(v, (folds, *v.shape)),
                                              tree)


def _fwd_bwd(apply, folds: int, argnums=None):
  """jit(grads of `sum(sin(apply(*args)))` wrt `argnums` (default: all)), vmapped over folds > 1."""

  def one(*args):
    nums = tuple(range(len(args))) if argnums is None else argnums
    return jax.grad(lambda *a: jnp.sum(jnp.sin(apply(*a))), argnums=nums)(*args)

  return jax.jit(one if folds == 1 else jax.vmap(one))


def _conv_row(spec, folds: int) -> dict | None:
  name, b, h, w, cin, cout, k, s, padding = spec
  flops = 3 * 2 * b * (h // s) * (w // s) * k * k * cin * cout * folds  # fwd + 2 bwd matmuls
  if folds > 1 and flops > FLAGS.max_cost:
    return None
  rng = np.random.default_rng(0)
  x = _stack(folds, jnp.asarray(rng.standard_normal((b, h, w, cin)), jnp.float32))
  kernel = _stack(folds, jnp.asarray(rng.standard_normal((k, k, cin, cout)) / k / np.sqrt(cin),
                                     jnp.float32))
  # A network's first layer (its input is data) needs no gradient wrt its input.
  argnums = (1,) if cin <= 3 else None

  def fwd_bwd(impl):
    conv = nn.Conv(cout, (k, k), strides=s, padding=padding, use_bias=False,
                   conv_general_dilated=lowering.conv_general_dilated(impl))
    return _fwd_bwd(lambda x, kk: conv.apply({"params": {"kernel": kk}}, x), folds, argnums)

  row = {"layer": name, "folds": folds, "gflop": flops / 1e9,
         **_median_ms({impl: fwd_bwd(impl) for impl in ("xla", "matmul")}, x, kernel)}
  row["auto"] = "matmul" if lowering._auto_prefers_matmul(  # pylint: disable=protected-access
      (b, h, w, cin), (k, k, cin, cout), (s, s), padding, None) else "xla"
  return row


def _pool_row(spec, folds: int) -> dict:
  name, b, h, w, c, kind, k, s, padding = spec
  x = _stack(folds, jnp.asarray(np.random.default_rng(0).standard_normal((b, h, w, c)),
                                jnp.float32))
  pool = {"max": lowering.max_pool, "avg": lowering.avg_pool}[kind]
  fns = {impl: _fwd_bwd(functools.partial(pool, window=(k, k), strides=(s, s), padding=padding,
                                           impl=impl), folds) for impl in ("xla", "matmul")}
  return {"layer": name, "folds": folds, "gflop": 0.0, **_median_ms(fns, x), "auto": "matmul"}


def _model_row(name: str, folds: int) -> dict:
  kwargs, shape = MODELS[name]
  x = _stack(folds, jnp.asarray(np.random.default_rng(0).standard_normal(shape), jnp.float32))
  model = functools.partial(models.get, name, num_classes=3, **kwargs)
  variables = _stack(folds, model().init({"params": jax.random.key(0, impl="rbg")},
                                         x if folds == 1 else x[0], train=False))
  key = jax.random.key(1, impl="rbg")

  def fwd_bwd(impl):
    def apply(params, x):
      logits, _ = model(conv_impl=impl).apply({**variables, "params": params}, x, train=True,
                                              rngs={"dropout": key}, mutable=["batch_stats"])
      return logits

    return _fwd_bwd(apply, folds, argnums=(0,))

  return {"layer": f"model {name}", "folds": folds, "gflop": float("nan"),
          **_median_ms({impl: fwd_bwd(impl) for impl in ("xla", "matmul", "auto")},
                       variables["params"], x)}


def _print(row: dict) -> None:
  extra = f"  auto={row['auto']:<6}" if isinstance(row.get("auto"), str) else (
      f"  auto {row['auto']:8.2f}" if "auto" in row else "")
  print(f"{row['layer']:<42} folds={row['folds']:<3} xla {row['xla']:9.2f} ms  matmul "
        f"{row['matmul']:9.2f} ms  xla/matmul {row['xla'] / row['matmul']:6.2f}x{extra}",
        flush=True)


def main(argv):
  del argv
  print(f"backend {jax.default_backend()} ({jax.devices()[0].device_kind}), jax {jax.__version__}; "
        "median ms of one jitted forward+backward")
  rows = []
  folds = [int(f) for f in FLAGS.folds]
  if "layers" in FLAGS.what:
    for spec in CONVS + POOLS:
      if FLAGS.only not in spec[0]:
        continue
      for n in folds:
        row = (_conv_row if spec in CONVS else _pool_row)(spec, n)
        if row is not None:
          _print(row)
          rows.append(row)
  if "models" in FLAGS.what:
    for name in FLAGS.models:
      for n in folds:
        row = _model_row(name, n)
        _print(row)
        rows.append(row)
  if FLAGS.json:
    with open(FLAGS.json, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  app.run(main)
