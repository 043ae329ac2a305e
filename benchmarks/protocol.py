"""A complete LOSO protocol, end to end, three ways: microexp sequential, microexp fold-parallel,
and the reference PyTorch per-fold training loop.

    python benchmarks/protocol.py                                  # STSTNet, MEGC2019 shape
    python benchmarks/protocol.py --folds=8 --epochs=20            # a reduced CPU run
    python benchmarks/protocol.py --preset=resnet50 --modes=sequential,parallel,torch
    python benchmarks/protocol.py --repeats=3 --out=/tmp/protocol.json

Presets (the same in-memory arrays feed all three ways):
- `ststnet`: MEGC2019-shaped synthetic flow, 442 clips x 28x28x3 (u, v, strain) from 68 subjects
  (CASME II 145/24, SAMM 133/28, SMIC-HS 164/16 with the real per-dataset class counts), 3 classes,
  150 epochs, batch 32; microexp runs `configs/ststnet_megc.py` as shipped (BatchNorm + dropout
  STSTNet, AdamW, augmentation, class-balanced loss), one seed, no final all-subject model.
- `offapexnet`: the `ststnet` data through `configs/offapexnet_megc.py` as shipped (microexp ways
  only: no reference PyTorch loop).
- `htnet`: the `ststnet` data through `configs/htnet_megc.py` (dim 256, batch 256, 800 epochs) with
  the regions cropped by the model from the whole face, as `configs/ensemble_megc.py`'s member
  (microexp ways only). A GPU recipe: ~3 s per step on this project's 2-core CPU.
- `resnet50`: CASME II-shaped, 255 clips from 26 subjects, 3 classes, 100 epochs, batch 16;
  `configs/resnet_loso.py` without ImageNet weights. On a GPU/TPU the real 224x224x3 ResNet50;
  on CPU reduced to 64x64 inputs and one bottleneck per stage (the torch side then uses the same
  reduced torchvision ResNet). The torch side needs torchvision; without it it is skipped, said so.

The torch way is our own code written the way the STSTNet authors publish their training script
(github.com/christy1206/STSTNet, main.py): a plain loop over subjects, a fresh model per fold, Adam,
CrossEntropyLoss, a DataLoader over a TensorDataset, `.item()` on every step's loss and accuracy,
and the test subject evaluated after every epoch; predictions of the last epoch are pooled for the
UF1. Differences from their file, all to match the microexp protocol: batch 32 and 150 epochs
(theirs: 256 and 800), the microexp config's learning rate (theirs: 5e-5), shuffled batches (theirs
read the class folders in order), and the same normalised arrays instead of PNGs read by cv2.

Data: rendered in memory with the project's synthetic faces and motions
(`microexp.synthetic.casme2.make_face` / `render_clip`: the class is visible in the onset->apex
motion only) and the project's flow (`microexp.vision.flow.apex_flow_image`, Farneback, then per-clip
min-max scaling as the loaders do). Nothing is written to disk except a temporary .npz the runs
read.

Each (way, repeat) runs in a fresh Python process, so that every protocol pays its own imports,
compilation and startup (no step cache shared between runs); the threads: JAX uses all the cores
this process may run on, torch gets `torch.set_num_threads` of the same count. Figures per way:
- `wall_s`: the child process from start (before importing JAX/torch) to the last prediction.
- `startup_s`: imports + data load + model-independent setup before training starts.
- `compile_s`: XLA tracing + lowering + compilation (jax.monitoring events; 0 for torch eager).
- `epoch_s`: steady-state time per protocol epoch (every fold advanced one epoch): microexp =
  (training wall - compile) / epochs; torch = the sum over folds of each fold's epoch times after
  its first epoch / (epochs - 1).
- accuracy / UF1 pooled over all test subjects (sanity: all three learn; chance UF1 ~ 0.33).
Ratios: torch / microexp for wall_s and epoch_s (> 1: microexp faster). Medians over --repeats.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

_T0 = time.perf_counter()  # child processes: the clock starts before JAX or torch is imported

MODES = ("sequential", "parallel", "torch")
# MEGC2019 composite (combined_3class_gt.csv): per dataset (subjects, clips, (negative, positive,
# surprise)) — the loader's EXPECTED / EXPECTED_CLASSES (microexp/loaders/megc_frames.py).
MEGC_SHAPE = (("casme2", 24, (88, 32, 25)), ("samm", 28, (92, 26, 15)),
              ("smic", 16, (70, 51, 43)))
# CASME II 3-class-sized LOSO: 26 subjects, 255 clips (classes spread evenly).
CASME2_SHAPE = (("casme2", 26, (85, 85, 85)),)
PRESETS = {
    "ststnet": dict(shape=MEGC_SHAPE, size=28, epochs=150, batch_size=32),
    "resnet50": dict(shape=CASME2_SHAPE, size=224, cpu_size=64, epochs=100, batch_size=16),
    "offapexnet": dict(shape=MEGC_SHAPE, size=28, epochs=150, batch_size=32),
    "htnet": dict(shape=MEGC_SHAPE, size=28, epochs=800, batch_size=256),
}
# The MEGC presets run their config as shipped: configs/<module>.py.
MEGC_CONFIGS = {"ststnet": "ststnet_megc", "offapexnet": "offapexnet_megc", "htnet": "htnet_megc"}
_NEGATIVE = ("disgust", "sadness", "fear", "repression")  # rendered motions of 'negative' clips


def cores() -> int:
  """CPU cores this process may run on (what XLA's CPU client uses)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:
    return os.cpu_count() or 1


def fewer_subjects(shape, folds: int):
  """`shape` with `folds` subjects in all, per dataset in proportion (at least one each; with
  fewer folds than datasets, the first datasets); every kept dataset keeps all its clips."""
  if folds <= 0:
    return shape
  total = sum(n for _, n, _ in shape)
  if folds > total:
    raise ValueError(f"--folds={folds}: this preset has only {total} subjects.")
  if folds < len(shape):
    return tuple((d, 1, c) for d, _, c in shape[:folds])
  share = [folds * n / total for _, n, _ in shape]
  counts = [max(1, int(x)) for x in share]
  for i in sorted(range(len(shape)), key=lambda i: int(share[i]) - share[i]):
    if sum(counts) >= folds:
      break
    counts[i] += 1
  while sum(counts) > folds:  # the at-least-one rule can overshoot
    counts[counts.index(max(counts))] -= 1
  return tuple((d, k, c) for (d, _, c), k in zip(shape, counts))


def synthetic_flows(shape, size: int, *, seed: int = 0) -> dict[str, np.ndarray]:
  """Apex-flow arrays of `shape` [(dataset, subjects, class counts)], in memory.

  Returns the registry's arrays: inputs float32 [N, size, size, 3] (u, v, strain; per-clip min-max
  to -1..1), emotion (MEGC class names), subject ('casme2/s01'), dataset, clip.
  """
  from microexp.vision import flow as flow_lib  # pylint: disable=g-import-not-at-top
  from microexp.synthetic import casme2 as synthetic  # pylint: disable=g-import-not-at-top
  from microexp.data.emotions import MEGC_CLASSES  # pylint: disable=g-import-not-at-top
  import cv2  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(seed)
  plan = []  # (dataset, subject, class)
  for dataset, num_subjects, counts in shape:
    labels = [c for c, n in zip(MEGC_CLASSES, counts) for _ in range(n)]
    rng.shuffle(labels)
    for i, label in enumerate(labels):  # round-robin: every subject gets every class
      plan.append((dataset, f"{dataset}/s{i % num_subjects + 1:02d}", label))
  face_size = (max(96, size + size // 8), max(80, size))
  faces, inputs = {}, []
  for dataset, subject, label in plan:
    if subject not in faces:
      faces[subject] = synthetic.make_face(rng, face_size)
    emotion = {"positive": "happiness", "surprise": "surprise"}.get(label) or str(
        rng.choice(_NEGATIVE))
    frames = synthetic.render_clip(faces[subject], emotion, 6, 3, float(rng.uniform(0.8, 1.2)),
                                   rng)
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in (frames[0], frames[3])]
    inputs.append(flow_lib.apex_flow_image(*gray, method="farneback", third_channel="strain",
                                           size=size))
  return dict(inputs=flow_lib.normalize_flows(np.stack(inputs), "per_clip"),
              emotion=np.array([p[2] for p in plan]), subject=np.array([p[1] for p in plan]),
              dataset=np.array([p[0] for p in plan]),
              clip=np.array([f"{p[1]}_{i:03d}" for i, p in enumerate(plan)]))


def preset_settings(preset: str, backend: str) -> dict:
  """Epochs, batch, input size and model of `preset` on `backend` ('cpu' gets the reduced ResNet)."""
  p = dict(PRESETS[preset])
  p["reduced"] = preset == "resnet50" and backend == "cpu"
  if p["reduced"]:
    p["size"] = p["cpu_size"]
  return p


# --- the three ways (each runs in its own process) ------------------------------------------------


def _microexp_config(preset: str, settings: dict, epochs: int, fold_parallel: bool):
  if preset in MEGC_CONFIGS:
    import importlib  # pylint: disable=g-import-not-at-top
    config = importlib.import_module(f"configs.{MEGC_CONFIGS[preset]}").get_config()
    if preset == "htnet":  # whole-face arrays: the model crops the regions (the ensemble's member)
      from microexp.vision import face_regions  # pylint: disable=g-import-not-at-top
      config.model.kwargs.regions = tuple(map(tuple, face_regions.MEAN_FACE_CENTRES.tolist()))
  else:
    from configs import resnet_loso  # pylint: disable=g-import-not-at-top
    config = resnet_loso.get_config("classes=3")
    config.dataset.classes = "megc"  # the arrays carry MEGC class names (3 classes)
    config.model.kwargs.weights = None  # the same from-scratch start as the torch side
    if settings["reduced"]:
      config.model.kwargs.stage_sizes = (1, 1, 1, 1)
      config.model.kwargs.variant = "torchvision"
      config.train.augment.crop = 4
  config.dataset.image_size = settings["size"]
  t = config.train
  t.epochs = epochs
  t.batch_size = settings["batch_size"]
  t.warmup_epochs = min(float(t.warmup_epochs), 0.1 * epochs)
  t.seeds = [0]
  t.final_seeds = []
  t.fold_parallel = fold_parallel
  return config


def run_microexp(arrays: dict, preset: str, settings: dict, epochs: int, parallel: bool) -> dict:
  """One LOSO protocol through `microexp.train.engine.train_and_evaluate`; figures of the run."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax import monitoring  # pylint: disable=g-import-not-at-top
  from microexp.train import engine  # pylint: disable=g-import-not-at-top

  compile_s = [0.0]
  events = ("/jax/core/compile/jaxpr_trace_duration",
            "/jax/core/compile/jaxpr_to_mlir_module_duration",
            "/jax/core/compile/backend_compile_duration")

  def on_event(event, duration, **kwargs):
    del kwargs
    if event in events:
      compile_s[0] += duration

  monitoring.register_event_duration_secs_listener(on_event)
  config = _microexp_config(preset, settings, epochs, parallel)
  with tempfile.TemporaryDirectory(prefix="bench_protocol_") as workdir:
    t_train = time.perf_counter()
    startup = t_train - _T0
    results = engine.train_and_evaluate(config, arrays, workdir)
    jax.block_until_ready(results)  # host floats already; waits for anything still in flight
    train_s = time.perf_counter() - t_train
  m = results["metrics"]
  return dict(startup_s=startup, compile_s=compile_s[0], train_s=train_s,
              epoch_s=max(train_s - compile_s[0], 0.0) / epochs, accuracy=m["accuracy"]["mean"],
              uf1=m["uf1"]["mean"], backend=jax.default_backend(),
              devices=jax.device_count())


def _torch_model(preset: str, settings: dict, num_classes: int):
  """The authors' STSTNet (BatchNorm + dropout, as released), or torchvision's ResNet50."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top

  if preset == "resnet50":
    from torchvision.models import resnet  # pylint: disable=g-import-not-at-top
    stages = [1, 1, 1, 1] if settings["reduced"] else [3, 4, 6, 3]
    return resnet.ResNet(resnet.Bottleneck, stages, num_classes=num_classes)

  class STSTNet(nn.Module):
    """Three 3x3 conv streams (3, 5, 8 filters) -> ReLU -> BN -> maxpool 3/3 -> dropout -> concat
    -> avgpool 2 -> fc; the authors pad the convs by 2 (28 -> 30 -> 10 -> 5)."""

    def __init__(self):
      super().__init__()
      self.streams = nn.ModuleList(
          nn.Sequential(nn.Conv2d(3, f, 3, padding=2), nn.ReLU(), nn.BatchNorm2d(f),
                        nn.MaxPool2d(3, 3, padding=1), nn.Dropout(0.5)) for f in (3, 5, 8))
      self.pool = nn.AvgPool2d(2, 2)
      self.fc = nn.Linear(5 * 5 * 16, num_classes)

    def forward(self, x):
      x = self.pool(torch.cat([s(x) for s in self.streams], 1))
      return self.fc(x.flatten(1))

  return STSTNet()


def run_torch(arrays: dict, preset: str, settings: dict, epochs: int) -> dict:
  """The reference per-fold loop (see the module docstring); figures of the run."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch.utils.data import DataLoader, TensorDataset  # pylint: disable=g-import-not-at-top
  from microexp.data.emotions import MEGC_CLASSES  # pylint: disable=g-import-not-at-top
  from microexp.train import metrics as metrics_lib  # pylint: disable=g-import-not-at-top

  torch.set_num_threads(cores())
  torch.manual_seed(0)
  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
  lr = float(_microexp_config(preset, settings, epochs, False).train.learning_rate)
  x_all = torch.from_numpy(np.ascontiguousarray(arrays["inputs"].transpose(0, 3, 1, 2)))
  y_all = torch.from_numpy(np.array([MEGC_CLASSES.index(e) for e in arrays["emotion"]]))
  k = len(MEGC_CLASSES)
  loss_fn = torch.nn.CrossEntropyLoss()
  t_train = time.perf_counter()
  startup = t_train - _T0
  epoch_times, gt, pred = [], [], []
  for subject in sorted(set(arrays["subject"])):
    test = torch.from_numpy(arrays["subject"] == subject)
    model = _torch_model(preset, settings, k).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    train_dl = DataLoader(TensorDataset(x_all[~test], y_all[~test]),
                          batch_size=settings["batch_size"], shuffle=True)
    test_dl = DataLoader(TensorDataset(x_all[test], y_all[test]),
                         batch_size=settings["batch_size"])
    for epoch in range(epochs):
      t0 = time.perf_counter()
      model.train()
      train_loss, correct, seen = 0.0, 0, 0
      for xb, yb in train_dl:
        xb, yb = xb.to(device), yb.to(device)
        optimizer.zero_grad()
        yhat = model(xb)
        loss = loss_fn(yhat, yb)
        loss.backward()
        optimizer.step()
        train_loss += loss.item() * xb.size(0)
        correct += (yhat.argmax(1) == yb).sum().item()
        seen += xb.size(0)
      model.eval()
      fold_pred, fold_gt = [], []
      with torch.no_grad():
        for xb, yb in test_dl:
          yhat = model(xb.to(device))
          fold_pred += yhat.argmax(1).tolist()
          fold_gt += yb.tolist()
      sync()
      if epoch > 0 or epochs == 1:
        epoch_times.append(time.perf_counter() - t0)
    gt += fold_gt
    pred += fold_pred
  train_s = time.perf_counter() - t_train
  cm = metrics_lib.confusion_matrix(np.array(gt), np.array(pred), k)
  return dict(startup_s=startup, compile_s=0.0, train_s=train_s,
              epoch_s=sum(epoch_times) / max(epochs - 1, 1), accuracy=metrics_lib.accuracy(cm),
              uf1=metrics_lib.uf1(cm), backend=device.type, devices=1,
              threads=torch.get_num_threads())


def _child(args) -> None:
  """Runs one way on the saved arrays; prints one JSON line."""
  with np.load(args.child_data) as f:
    arrays = {k: f[k] for k in f.files}
  settings = json.loads(args.child_settings)
  if args.child_mode != "torch":
    from microexp.train import cpu_devices  # pylint: disable=g-import-not-at-top
    cpu_devices.configure(cpu_devices.count(args.cpu_devices or None))
  if args.child_mode == "torch":
    r = run_torch(arrays, args.preset, settings, args.epochs)
  else:
    r = run_microexp(arrays, args.preset, settings, args.epochs, args.child_mode == "parallel")
  r["wall_s"] = time.perf_counter() - _T0
  print("PROTOCOL_RESULT " + json.dumps(r), flush=True)


# --- the driver ----------------------------------------------------------------------------------


def _torch_skip_reason(preset: str) -> str | None:
  import importlib.util  # pylint: disable=g-import-not-at-top
  if preset in ("offapexnet", "htnet"):
    return "no reference PyTorch loop for this preset"
  if importlib.util.find_spec("torch") is None:
    return "torch is not installed (pip install -r requirements-test.txt)"
  if preset == "resnet50" and importlib.util.find_spec("torchvision") is None:
    return "torchvision is not installed: no reference ResNet50 (pip install torchvision)"
  return None


def _child_env() -> dict:
  env = dict(os.environ)
  root = pathlib.Path(__file__).resolve().parents[1]
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  return env


def _backend() -> tuple[str, str]:
  """JAX's default backend and device kind, asked in a child process: this driver never holds
  the accelerator (JAX preallocates most of a GPU's memory) while the runs need it."""
  out = subprocess.run([sys.executable, "-c", "import jax; d = jax.devices()[0]; "
                        "print(jax.default_backend(), '|', d.device_kind)"],
                       env=_child_env(), capture_output=True, text=True, check=True).stdout
  backend, _, kind = out.strip().splitlines()[-1].partition(" | ")
  return backend, kind


def _run_child(mode: str, args, data_path: str, settings: dict) -> dict:
  cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), f"--preset={args.preset}",
         f"--epochs={args.epochs}", f"--child_mode={mode}", f"--child_data={data_path}",
         f"--child_settings={json.dumps(settings)}", f"--cpu_devices={args.cpu_devices}"]
  proc = subprocess.run(cmd, env=_child_env(), capture_output=True, text=True, check=False)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("PROTOCOL_RESULT ")]
  if proc.returncode or not lines:
    raise RuntimeError(f"benchmark run '{mode}' failed (exit {proc.returncode}):\n"
                       f"{proc.stderr[-4000:]}")
  return json.loads(lines[-1][len("PROTOCOL_RESULT "):])


def _median_row(runs: list[dict]) -> dict:
  row = {k: statistics.median(r[k] for r in runs) for k in
         ("wall_s", "startup_s", "compile_s", "train_s", "epoch_s", "accuracy", "uf1")}
  row.update(backend=runs[0]["backend"], repeats=len(runs))
  return row


def _ratio(a, b) -> float:
  return a / b if b and math.isfinite(a) and math.isfinite(b) else float("nan")


def format_table(table: dict) -> str:
  """The printed table: one row per way, then the ratios."""
  s = table["setup"]
  lines = [f"LOSO protocol, preset {s['preset']}{' (reduced for CPU)' if s['reduced'] else ''}: "
           f"{s['clips']} clips x {s['size']}x{s['size']}x3, {s['folds']} folds, "
           f"{s['epochs']} epochs, batch {s['batch_size']}; {s['cores']} cores; "
           f"median of {s['repeats']} run(s)",
           f"  {'way':11s} {'wall s':>9s} {'startup s':>9s} {'compile s':>9s} {'epoch s':>9s} "
           f"{'accuracy':>8s} {'UF1':>6s}  backend"]
  for mode, r in table["rows"].items():
    lines.append(f"  {mode:11s} {r['wall_s']:9.2f} {r['startup_s']:9.2f} {r['compile_s']:9.2f} "
                 f"{r['epoch_s']:9.4f} {r['accuracy']:8.3f} {r['uf1']:6.3f}  {r['backend']}")
  for mode, reason in table["skipped"].items():
    lines.append(f"  {mode:11s} skipped: {reason}")
  for name, v in table["ratios"].items():
    lines.append(f"  {name}: {v:.2f}x")
  return "\n".join(lines)


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--preset", choices=sorted(PRESETS), default="ststnet")
  p.add_argument("--epochs", type=int, default=0,
                 help="0: the preset's (ststnet, offapexnet 150; resnet50 100; htnet 800)")
  p.add_argument("--folds", type=int, default=0,
                 help="this many subjects (LOSO folds) sharing all the clips (0: the preset's)")
  p.add_argument("--modes", default=",".join(MODES), help="subset of " + ",".join(MODES))
  p.add_argument("--repeats", type=int, default=1, help="runs per way; medians are reported")
  p.add_argument("--out", default="", help="write the table as JSON here")
  p.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
  p.add_argument("--cpu_devices", default="",
                 help="microexp's JAX CPU devices, as main.py --cpu_devices (default: "
                      "$MICROEXP_CPU_DEVICES, else 'auto', one per core)")
  p.add_argument("--child_mode", default="", help=argparse.SUPPRESS)
  p.add_argument("--child_data", default="", help=argparse.SUPPRESS)
  p.add_argument("--child_settings", default="", help=argparse.SUPPRESS)
  return p.parse_args(argv)


def main(argv=None) -> dict:
  """Runs the benchmark; prints and returns the table {setup, rows, skipped, ratios}."""
  args = parse_args(argv)
  if args.child_mode:
    _child(args)
    return {}
  modes = [m.strip() for m in args.modes.split(",") if m.strip()]
  if not modes or any(m not in MODES for m in modes):
    raise SystemExit(f"--modes={args.modes!r}: choose a subset of {','.join(MODES)}.")
  backend, device_kind = _backend()
  settings = preset_settings(args.preset, backend)
  args.epochs = args.epochs or settings["epochs"]
  t0 = time.perf_counter()
  arrays = synthetic_flows(fewer_subjects(settings["shape"], args.folds), settings["size"],
                           seed=args.seed)
  print(f"data: {len(arrays['inputs'])} clips {arrays['inputs'].shape[1:]} from "
        f"{len(set(arrays['subject']))} subjects, made in {time.perf_counter() - t0:.1f} s",
        flush=True)
  skipped = {}
  reason = _torch_skip_reason(args.preset)
  if "torch" in modes and reason:
    skipped["torch"] = reason
    modes.remove("torch")
  runs = {m: [] for m in modes}
  with tempfile.TemporaryDirectory(prefix="bench_protocol_data_") as tmp:
    data_path = os.path.join(tmp, "arrays.npz")
    np.savez(data_path, **arrays)
    child_settings = {k: v for k, v in settings.items() if k != "shape"}
    for rep in range(args.repeats):
      for mode in modes:  # interleaved, so that a change of machine load hits every way alike
        r = _run_child(mode, args, data_path, child_settings)
        print(f"  run {rep + 1}/{args.repeats} {mode}: wall {r['wall_s']:.1f} s (startup "
              f"{r['startup_s']:.1f}, compile {r['compile_s']:.1f}, epoch {r['epoch_s']:.3f}), "
              f"UF1 {r['uf1']:.3f}", flush=True)
        runs[mode].append(r)
  rows = {m: _median_row(runs[m]) for m in modes}
  ratios = {}
  if "torch" in rows:
    for m in ("sequential", "parallel"):
      if m in rows:
        ratios[f"torch / microexp {m} (wall)"] = _ratio(rows["torch"]["wall_s"], rows[m]["wall_s"])
        ratios[f"torch / microexp {m} (epoch)"] = _ratio(rows["torch"]["epoch_s"],
                                                         rows[m]["epoch_s"])
  if "sequential" in rows and "parallel" in rows:
    ratios["microexp sequential / parallel (wall)"] = _ratio(rows["sequential"]["wall_s"],
                                                             rows["parallel"]["wall_s"])
  table = dict(setup=dict(preset=args.preset, reduced=settings["reduced"],
                          clips=len(arrays["inputs"]), size=settings["size"],
                          folds=len(set(arrays["subject"])), epochs=args.epochs,
                          batch_size=settings["batch_size"], cores=cores(),
                          repeats=args.repeats, backend=backend,
                          device=device_kind),
               rows=rows, skipped=skipped, ratios=ratios,
               runs={m: runs[m] for m in modes})
  print(format_table(table), flush=True)
  if args.out:
    pathlib.Path(args.out).write_text(json.dumps(table, indent=1))
  return table


if __name__ == "__main__":
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the repo, when not installed
  main()
