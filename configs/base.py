"""Shared config pieces and the ONE parser of the `:arg` suffix.

    main.py --config=configs/resnet_loso.py:classes=3,synthetic

`arg` is a comma-separated list of:
- `classes=...`: a class subset of `microexp.data.emotions` — `7`, `5` (the CASME II paper's
  standard five: happiness, surprise, disgust, repression, others), `3`, `megc`, `thesis5` (the
  thesis's five: happiness, surprise, repression, sadness, disgust), `thesis5_m5` (its M5's
  second run) — or emotions joined by '+' (`classes=happiness+surprise+repression`);
- `synthetic`: a small synthetic CASME II and a CPU-sized model/input, so that every config runs on
  CPU in minutes;
- `thesis`: the thesis's own settings for its methods M1-M7 (docs/thesis.md); combines with the
  other two (`:thesis,synthetic,classes=3`);
- `nested`: the MEGC2019 configs' nested selection grid (`config.train.search`, configs/common.py).
Every field stays overridable on the command line (`--config.train.epochs=50`; lists as tuples,
`--config.train.seeds='(0,1)'`).
"""

from __future__ import annotations

import ml_collections

from microexp.data import emotions

# Weights file the real ResNet configs name (Keras ImageNet notop file; not shipped, see
# docs/training.md for where to put it).
RESNET50_KERAS_WEIGHTS = "data/weights/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"


def parse_arg(arg: str | None) -> ml_collections.ConfigDict:
  """'classes=3,synthetic,thesis' -> ConfigDict(classes='3', synthetic=True, thesis=True)."""
  # classes=None: not given; each config family has its own default (CASME II: '5').
  opts = ml_collections.ConfigDict({"classes": ml_collections.FieldReference(None, field_type=str),
                                    "synthetic": False, "thesis": False, "nested": False})
  expected = ("expected 'classes=<subset>' (7, 5, 3, megc, thesis5, thesis5_m5 or emotions joined "
              "by '+'), 'synthetic', 'thesis' and/or 'nested'")
  for item in filter(None, (arg or "").split(",")):
    key, _, value = item.strip().partition("=")
    if key == "classes" and value:
      try:
        emotions.get_subset(value)
      except ValueError as e:
        raise ValueError(f"Unknown config argument {item!r} in {arg!r}: {e}") from None
      opts.classes = value.lower()
    elif key in ("synthetic", "thesis", "nested") and value in ("", "true", "True", "1"):
      opts[key] = True
    else:
      raise ValueError(f"Unknown config argument {item!r} in {arg!r}; {expected}.")
  return opts


def get_config(opts: ml_collections.ConfigDict, *, nested: bool = False
               ) -> ml_collections.ConfigDict:
  """Defaults shared by every method (apex flow, LOSO, clean validation-free schedule).

  nested: the caller reads `opts.nested` (a config family without a search grid refuses it).
  """
  if opts.nested and not nested:
    raise ValueError("`:nested` (a nested-selection grid) applies to the MEGC2019 configs "
                     "(configs/*_megc.py); elsewhere set config.train.search yourself.")
  config = ml_collections.ConfigDict()

  config.dataset = ds = ml_collections.ConfigDict()
  ds.name = "casme2"
  ds.representation = "apex_flow"
  ds.classes = opts.classes or "5"
  ds.synthetic = bool(opts.synthetic)
  ds.manual_dir = ml_collections.FieldReference(None, field_type=str)
  ds.data_dir = ml_collections.FieldReference(None, field_type=str)
  ds.image_size = 224
  ds.flow_method = "farneback"
  ds.third_channel = "magnitude"
  ds.flow_kwargs = ml_collections.ConfigDict()  # the flow method's own parameters (tvl1 scales...)
  # 'per_clip': each flow channel min-max scaled per clip to -1..1 (STSTNet / MEGC2019 release);
  # 'none': raw pixels. Applied by the loaders and by predict (docs/training.md).
  ds.flow_normalization = "per_clip"
  ds.au_sides = False  # `au` arrays: True keeps L/R action units apart (docs/data.md)
  # Face alignment of uncropped frames (microexp/vision/align.py: 'landmarks' | 'box' | 'none'); None:
  # the dataset's frames are already face crops. Recorded in model.json; predict repeats it.
  ds.alignment = ml_collections.FieldReference(None, field_type=str)
  # subtract_onset: frames minus the clip's onset frame (sequences only; see docs/training.md).
  # mask_padding=False: padded frames are fed as frames (mask all True; thesis M1).
  ds.sequence = ml_collections.ConfigDict({"mode": "pad", "length": 32, "grayscale": True,
                                           "subtract_onset": False, "mask_padding": True,
                                           "padding": "post"})
  # write_synthetic_casme2 kwargs when synthetic=True.
  ds.synthetic_kwargs = ml_collections.ConfigDict({
      "num_subjects": 26, "clips_per_subject": 10, "image_size": (85, 70),
      "num_frames": (12, 24), "seed": 0})

  config.model = ml_collections.ConfigDict()
  config.model.name = ""
  config.model.kwargs = ml_collections.ConfigDict()
  config.model.dtype = "float32"

  config.train = t = ml_collections.ConfigDict()
  t.protocol = "loso"
  t.test_subjects = ("sub21", "sub22", "sub23", "sub24", "sub25", "sub26")  # split only
  # Cross-dataset protocols (microexp/train/protocols.py): 'lodo' | 'holdout' (these two) |
  # 'official_split' (DFME's `split` array); subjects become dataset-qualified ('samm/006').
  t.train_datasets = ()  # holdout only: datasets trained on
  t.test_datasets = ()  # holdout only: datasets tested on
  # 'emotion' (softmax over config.dataset.classes) | 'au' (sigmoid per action unit, tasks.py).
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
  # set it there to cap chunks (else one chunk holds every job).
  t.memory_budget_gb = 0.0
  # Seconds between (asynchronous) checkpoints; a kill -9 loses at most this much training.
  # SIGTERM / SIGINT save before stopping. 0 = after every epoch.
  t.checkpoint_every_s = 120.0
  t.tensorboard = True
  return config


def make_synthetic(config: ml_collections.ConfigDict, *, image_size: int, epochs: int,
                   num_subjects: int = 8, clips_per_subject: int = 12,
                   seeds=(0,)) -> ml_collections.ConfigDict:
  """CPU-sized variant on a synthetic CASME II (small set, small input, few epochs, one seed)."""
  config.dataset.synthetic = True
  config.dataset.image_size = image_size
  config.dataset.synthetic_kwargs.num_subjects = num_subjects
  config.dataset.synthetic_kwargs.clips_per_subject = clips_per_subject
  config.dataset.sequence.length = min(config.dataset.sequence.length, 8)
  config.train.epochs = epochs
  config.train.warmup_epochs = 1.0
  config.train.seeds = tuple(seeds)
  config.train.final_seeds = tuple(seeds[:1])
  config.train.augment.crop = max(1, image_size // 16)
  config.train.test_subjects = (f"sub{num_subjects - 1:02d}", f"sub{num_subjects:02d}")
  config.train.num_val_subjects = 2
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


def thesis_classes(config: ml_collections.ConfigDict, opts: ml_collections.ConfigDict,
                   default: str) -> ml_collections.ConfigDict:
  """The method's thesis class set unless `classes=` was given."""
  config.dataset.classes = opts.classes or default
  return config


def refuse_thesis(opts: ml_collections.ConfigDict, name: str) -> None:
  """Configs of methods the thesis did not run have no `:thesis` variant."""
  if opts.thesis:
    raise ValueError(f"{name} is not one of the thesis's methods (M1-M7); `:thesis` applies to "
                     "cnn_lstm_padded, cnn_lstm_apex, cnn_lstm_ragged, cnn_lstm_flow, flow_cnn, "
                     "resnet_split and resnet_loso (docs/thesis.md).")


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
