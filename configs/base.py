"""The shared config blocks and the ONE parser of the `:arg` suffix.

    main.py --config=configs/resnet_loso.py:classes=3,synthetic

Each config file declares what its `:arg` accepts (big_vision's `parse_arg` with a spec):

    opts = base.parse_arg(arg, classes="5", synthetic=False, thesis=False)

and refuses everything else, naming the keys it accepts. The keys in use:
- `classes=...`: a class subset of `microexp.data.emotions` — `7`, `5` (the CASME II paper's
  standard five: happiness, surprise, disgust, repression, others), `3`, `megc`, `thesis5` (the
  thesis's five: happiness, surprise, repression, sadness, disgust), `thesis5_m5` (its M5's
  second run) — or emotions joined by '+' (`classes=happiness+surprise+repression`);
- `synthetic`: a small synthetic dataset and a CPU-sized model/input, so that every config runs on
  CPU in minutes;
- `thesis`: the thesis's own settings for its methods M1-M7 (docs/thesis.md); combines with the
  other two (`:thesis,synthetic,classes=3`);
- `nested`: the MEGC2019 configs' nested selection grid (`config.train.search`, configs/common.py).
Every field stays overridable on the command line (`--config.train.epochs=50`; lists as tuples,
`--config.train.seeds='(0,1)'`).

A config is composed of blocks: `dataset(...)` (fields every dataset has), `model()`, `train()`
(the training defaults every method starts from), assembled by `config(dataset)`; the families'
own blocks (CASME II's sequences and synthetic tree, MEGC2019, the composite) are in
configs/common.py.
"""

from __future__ import annotations

import ml_collections

from microexp.data import emotions

# Weights file the real ResNet configs name (Keras ImageNet notop file; not shipped, see
# docs/training.md for where to put it).
RESNET50_KERAS_WEIGHTS = "data/weights/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"

_CLASSES = "7, 5, 3, megc, thesis5, thesis5_m5 or emotions joined by '+'"
# Where a key a config does not declare applies: its refusal says so.
_APPLIES_TO = {
    "thesis": ("the thesis's methods M1-M7 only: cnn_lstm_padded, cnn_lstm_apex, cnn_lstm_ragged, "
               "cnn_lstm_flow, flow_cnn, resnet_split and resnet_loso (docs/thesis.md)"),
    "nested": ("the MEGC2019 configs (configs/*_megc.py) only; elsewhere set config.train.search "
               "yourself"),
}


def parse_arg(arg: str | None, **spec) -> ml_collections.ConfigDict:
  """'classes=3,synthetic' -> ConfigDict(classes='3', synthetic=True, ...) over `spec`'s keys.

  spec: every key the config accepts, with its default. A bool default makes a flag (`synthetic`,
  or `synthetic=true`); any other default takes `key=value` (`classes=` must name a class subset).
  An undeclared key or a malformed value raises a ValueError listing the accepted keys.
  """
  opts = ml_collections.ConfigDict(spec)
  accepted = ", ".join(f"'{k}'" if isinstance(v, bool) else
                       f"'{k}=<subset>' ({_CLASSES})" if k == "classes" else f"'{k}=<value>'"
                       for k, v in spec.items())
  for item in filter(None, (arg or "").split(",")):
    key, _, value = item.strip().partition("=")
    if key in spec and isinstance(spec[key], bool) and value in ("", "true", "True", "1"):
      opts[key] = True
    elif key in spec and not isinstance(spec[key], bool) and value:
      if key == "classes":
        try:
          emotions.get_subset(value)
        except ValueError as e:
          raise ValueError(f"Unknown config argument {item!r} in {arg!r}: {e}") from None
        value = value.lower()
      opts[key] = value
    else:
      hint = (f" `:{key}` applies to {_APPLIES_TO[key]}."
              if key not in spec and key in _APPLIES_TO else "")
      raise ValueError(f"Unknown config argument {item!r} in {arg!r}; this config accepts "
                       f"{accepted}.{hint}")
  return opts


def thesis_classes(opts: ml_collections.ConfigDict, thesis: str) -> str:
  """The `classes=` given (spec default None), else the method's thesis class set under
  `:thesis`, else CASME II's standard five."""
  return opts.classes or (thesis if opts.thesis else "5")


def placeholder(field_type: type = str) -> ml_collections.FieldReference:
  """An unset field (None) that the command line may set to a `field_type`."""
  return ml_collections.FieldReference(None, field_type=field_type)


def dataset(name: str, *, classes: str, synthetic: bool, alignment: bool = True
            ) -> ml_collections.ConfigDict:
  """The fields every dataset has (apex flow by default).

  alignment=False: no dataset-wide `alignment` (a composite aligns each member on its own).
  """
  ds = ml_collections.ConfigDict()
  ds.name = name
  ds.representation = "apex_flow"
  ds.classes = classes
  ds.synthetic = bool(synthetic)
  ds.manual_dir = placeholder(str)
  ds.data_dir = placeholder(str)
  ds.image_size = 224
  ds.flow_method = "farneback"
  ds.third_channel = "magnitude"
  ds.flow_kwargs = ml_collections.ConfigDict()  # the flow method's own parameters (tvl1 scales...)
  # 'per_clip': each flow channel min-max scaled per clip to -1..1 (STSTNet / MEGC2019 release);
  # 'none': raw pixels. Applied by the loaders and by predict (docs/training.md).
  ds.flow_normalization = "per_clip"
  ds.au_sides = False  # `au` arrays: True keeps L/R action units apart (docs/data.md)
  if alignment:
    # Face alignment of uncropped frames (microexp/vision/align.py: 'landmarks' | 'box' | 'none');
    # None: the dataset's frames are already face crops. Recorded in model.json; predict repeats it.
    ds.alignment = placeholder(str)
  return ds


def model() -> ml_collections.ConfigDict:
  """An empty model (`name` from the registry, its `kwargs`)."""
  return ml_collections.ConfigDict({"name": "", "kwargs": ml_collections.ConfigDict(),
                                    "dtype": "float32"})


def train() -> ml_collections.ConfigDict:
  """The training defaults every method starts from (LOSO, a clean validation-free schedule)."""
  t = ml_collections.ConfigDict()
  t.protocol = "loso"
  t.test_subjects = ("sub21", "sub22", "sub23", "sub24", "sub25", "sub26")  # split only
  # Cross-dataset protocols (microexp/train/protocols.py): 'lodo' | 'holdout' (these two) |
  # 'official_split' (DFME's `split` array); subjects become dataset-qualified ('samm/006').
  t.train_datasets = ()  # holdout only: datasets trained on
  t.test_datasets = ()  # holdout only: datasets tested on
  # 'emotion' (softmax over config.dataset.classes) | 'au' (sigmoid per action unit);
  # microexp/train/tasks/.
  t.task = "emotion"
  t.au_min_count = 5  # AU task: AUs with fewer positive clips are left out (listed in results)
  t.au_pos_weight = False  # AU task: weight positives by negatives/positives of the fold
  # 'last': fixed schedule, report the last epoch. 'val': choose the epoch on validation
  # subjects carved out of the training subjects (never the test subject).
  t.selection = "last"
  t.num_val_subjects = 3
  t.select_metric = "uf1"  # 'loss' | 'accuracy' | 'uf1' on the validation subjects
  t.epochs = 30
  t.batch_size = 16
  t.eval_batch_size = 64
  # Test-subject monitoring curves every `eval_every` epochs and at the last one; 0 = about 5
  # evaluations per run. selection='val' evaluates every epoch (each epoch is a candidate).
  t.eval_every = 0
  t.optimizer = "adamw"  # 'adamw' | 'sgd' (momentum)
  t.momentum = 0.9
  t.learning_rate = 1e-3
  t.weight_decay = 1e-4
  t.warmup_epochs = 2.0
  # 'warmup_cosine' (warmup, then cosine decay to 0) | 'constant' (Keras' default; `:thesis`).
  t.schedule = "warmup_cosine"
  t.grad_clip = 1.0
  t.label_smoothing = 0.1
  # Loss weights: True balances the classes of each fold's training set, 'per_dataset' balances
  # them within each source dataset (a composite's SAMM majority weighs only within SAMM), False
  # gives every clip weight 1 (microexp/train/inputs.py:loss_weights).
  t.class_balanced = ml_collections.FieldReference(True, field_type=object)
  t.augment = ml_collections.ConfigDict({
      "flip_h": True, "flip_v": False, "crop": 8, "rotation": 0.0, "mixup": 0.0,
      "flow_aware": True})
  # Test-time augmentation at evaluation: flip_h averages each clip with its (flow-aware) mirror.
  t.tta = ml_collections.ConfigDict({"flip_h": False})
  # Nested selection (microexp/train/search.py): field path (under config.train, or 'model.…') ->
  # tuple of values; empty = off. Each candidate of the grid is scored (search_metric, pooled
  # over `search_inner_folds` subject groups of each outer fold's training subjects); the best is
  # retrained on the fold's training set and tested once.
  t.search = ml_collections.ConfigDict()
  t.search_inner_folds = 3
  t.search_metric = "uf1"  # 'uf1' | 'uar' | 'accuracy'
  t.freeze = ()  # top-level parameter names to freeze (e.g. ('backbone',))
  t.seeds = (0, 1, 2)
  t.final_seeds = (0, 1, 2)  # final all-subject models (a seed ensemble for prediction)
  # 'auto': a few timed epochs of each mode at start-up pick the faster one (kept in the workdir).
  t.fold_parallel = ml_collections.FieldReference("auto", field_type=object)  # or True / False
  # Fold-parallel: jobs per chunk; 0 = as many as fit in device memory (XLA's memory estimate
  # against the free device memory or memory_budget_gb). Sequential runs one job at a time.
  t.fold_chunk = 0
  # GiB per device the chunks may use; 0 = ask the device (GPU/TPU). CPUs report no figure:
  # set it there to cap chunks (else one chunk holds every job); on a CPU it is the memory all
  # its devices share (main.py --cpu_devices).
  t.memory_budget_gb = 0.0
  # Seconds between (asynchronous) checkpoints; a kill -9 loses at most this much training.
  # SIGTERM / SIGINT save before stopping. 0 = after every epoch.
  t.checkpoint_every_s = 120.0
  t.tensorboard = True
  return t


def train_fields(fields, **overrides) -> ml_collections.ConfigDict:
  """Only `fields` of the training defaults (`train()`), in that order, `overrides` set on them:
  for a method that reads a few of the fields (the long-video protocols)."""
  defaults, out = train(), ml_collections.ConfigDict()
  unknown = sorted(set(overrides) - set(fields))
  if unknown:
    raise ValueError(f"configs/base.py train_fields: overrides {unknown} are not among the fields "
                     f"{list(fields)}.")
  for field in fields:
    out[field] = overrides[field] if field in overrides else defaults[field]
  return out


def config(ds: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A whole config: `ds`, an empty model, the shared training defaults."""
  return ml_collections.ConfigDict({"dataset": ds, "model": model(), "train": train()})


def synthetic_training(config: ml_collections.ConfigDict, *, epochs: int, seeds=(0,)
                       ) -> ml_collections.ConfigDict:
  """CPU-sized training on a synthetic dataset: few epochs, a short warmup, few seeds (the first
  for the final model), 2 validation subjects."""
  config.dataset.synthetic = True
  t = config.train
  t.epochs = epochs
  t.warmup_epochs = 1.0
  t.seeds = tuple(seeds)
  t.final_seeds = tuple(seeds[:1])
  t.num_val_subjects = 2
  return config


# ----------------------------------------------------------------------------------------------
# `:thesis` (docs/thesis.md): what the thesis states, and Keras' defaults of its time where it is
# silent.

THESIS_IMAGE_SIZE = 224  # the thesis's frames and flow images: 224x224x3


def keras_training(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Training where the thesis is silent: Keras' defaults of its time.

  Adam (adamw without weight decay) at 1e-3, batch 32, a constant rate (`schedule='constant'`, no
  warmup), no label smoothing, no class weights, no gradient clipping, no augmentation (the method
  configs add the flips the thesis states), the last epoch reported, one seed. Epochs stay the
  method's own unless the thesis states them (M7: 100).
  """
  t = config.train
  t.optimizer, t.learning_rate, t.weight_decay, t.batch_size = "adamw", 1e-3, 0.0, 32
  t.schedule, t.warmup_epochs = "constant", 0.0
  t.label_smoothing, t.class_balanced, t.grad_clip = 0.0, False, 0.0
  t.selection = "last"
  t.seeds, t.final_seeds = (0,), (0,)
  t.augment = ml_collections.ConfigDict({"flip_h": False, "flip_v": False, "crop": 0,
                                         "rotation": 0.0, "mixup": 0.0, "flow_aware": True})
  return config


def keras_random_flip(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Keras' `RandomFlip('horizontal_and_vertical')`: plain image flips, flow signs untouched."""
  config.train.augment.update({"flip_h": True, "flip_v": True, "flow_aware": False})
  return config


def thesis_sequences(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """M1-M4 as the thesis ran them: 224x224 RGB frames (3-channel input), raw frames (not relative
  to the onset), Keras' training defaults, no augmentation. `:synthetic` keeps its small input."""
  keras_training(config)
  if not config.dataset.synthetic:
    config.dataset.image_size = THESIS_IMAGE_SIZE
  config.dataset.sequence.update({"grayscale": False, "subtract_onset": False})
  if "frame_pool" in config.model.kwargs:
    config.model.kwargs.frame_pool = "mean"  # a plain global average pooling, as Keras' CNNs
  return config
