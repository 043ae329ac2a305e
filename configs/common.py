"""The config families and the recipes several methods share (each written once).

Families (each builds a whole config from the blocks of configs/base.py; no field is deleted):
- `casme2_config`: CASME II (apex flow or sequences; `small_casme2` is its synthetic tree);
  `sequence_config` / `synthetic_sequences`: the CNN-LSTM / ConvLSTM sequence methods (thesis
  M1-M4, configs/cnn_lstm_*.py, convlstm_loso.py);
- `megc_config`: the MEGC2019 protocol (configs/*_megc.py);
- `uncropped_config`: an apex-flow-only dataset of uncropped frames (CAS(ME)^3, DFME);
- `composite_config`: a composite of every dataset, leave-one-dataset-out.
Recipes: `ststnet` (the model), `shallow_flow_training` (STSTNet / Off-ApexNet on 28x28 flow).
"""

from __future__ import annotations

import ml_collections

from configs import base

# ----------------------------------------------------------------------------------------------
# Recipes.


def ststnet(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """STSTNet with BatchNorm + dropout (the authors' PyTorch release trains far more stably than
  the paper's net)."""
  config.model.name = "ststnet"
  config.model.kwargs = ml_collections.ConfigDict({"batch_norm": True, "dropout": 0.5})
  return config


def shallow_flow_training(config: ml_collections.ConfigDict, *, synthetic: bool
                          ) -> ml_collections.ConfigDict:
  """Training of a shallow net on 28x28 apex flow (STSTNet, Off-ApexNet): 100 epochs of batch 64
  at 5e-4, weight decay 0.01, flips, 2 px shifts, 8 degree rotations, mixup 0.2. `synthetic`: 15
  epochs of batch 16, one seed, no rotation or mixup."""
  t = config.train
  t.epochs, t.batch_size, t.learning_rate, t.weight_decay = 100, 64, 5e-4, 0.01
  t.augment.update({"flip_h": True, "crop": 2, "rotation": 8.0, "mixup": 0.2})
  if synthetic:
    base.synthetic_training(config, epochs=15)
    t.batch_size = 16
    t.augment.update({"rotation": 0.0, "mixup": 0.0})
  return config


# ----------------------------------------------------------------------------------------------
# CASME II.


def casme2_config(*, classes: str, synthetic: bool) -> ml_collections.ConfigDict:
  """CASME II: apex flow by default; the `sequence` fields of the sequence methods; the synthetic
  tree's `synthetic_kwargs` (microexp/synthetic: write_synthetic_casme2)."""
  ds = base.dataset("casme2", classes=classes, synthetic=synthetic)
  # subtract_onset: frames minus the clip's onset frame (sequences only; see docs/training.md).
  # mask_padding=False: padded frames are fed as frames (mask all True; thesis M1).
  ds.sequence = ml_collections.ConfigDict({"mode": "pad", "length": 32, "grayscale": True,
                                           "subtract_onset": False, "mask_padding": True,
                                           "padding": "post"})
  ds.synthetic_kwargs = ml_collections.ConfigDict({
      "num_subjects": 26, "clips_per_subject": 10, "image_size": (85, 70),
      "num_frames": (12, 24), "seed": 0})
  return base.config(ds)


def small_casme2(config: ml_collections.ConfigDict, *, image_size: int, num_subjects: int = 8,
                 clips_per_subject: int = 12) -> ml_collections.ConfigDict:
  """A small synthetic CASME II at a small input: its subjects, the last two tested by `split`,
  sequences of at most 8 frames, shifts of 1/16 of the input."""
  config.dataset.synthetic = True
  config.dataset.image_size = image_size
  config.dataset.synthetic_kwargs.num_subjects = num_subjects
  config.dataset.synthetic_kwargs.clips_per_subject = clips_per_subject
  config.dataset.sequence.length = min(config.dataset.sequence.length, 8)
  config.train.augment.crop = max(1, image_size // 16)
  config.train.test_subjects = (f"sub{num_subjects - 1:02d}", f"sub{num_subjects:02d}")
  return config


def casme2_synthetic(config: ml_collections.ConfigDict, *, image_size: int, epochs: int
                     ) -> ml_collections.ConfigDict:
  """CPU-sized variant on a synthetic CASME II (small set, small input, few epochs, one seed)."""
  small_casme2(config, image_size=image_size)
  return base.synthetic_training(config, epochs=epochs)


def sequence_config(*, classes: str, synthetic: bool, mode: str,
                    representation: str = "sequences", grayscale: bool = True,
                    length_synthetic: int | None = None) -> ml_collections.ConfigDict:
  """Shared by M1-M4: a CNN-LSTM over frame (or flow) sequences."""
  config = casme2_config(classes=classes, synthetic=synthetic)
  config.dataset.representation = representation
  config.dataset.image_size = 64
  config.dataset.sequence.update({"mode": mode, "length": 32, "grayscale": grayscale})
  config.model.name = "cnn_lstm"
  config.model.kwargs.frame_features = (32, 64, 128)
  config.model.kwargs.lstm_features = (128,)
  config.model.kwargs.dropout = 0.5
  # Mean and max of the frame features over space: a movement in a small part of the face is
  # diluted by the mean alone (layers.global_pool).
  config.model.kwargs.frame_pool = "mean_max"
  t = config.train
  t.epochs, t.batch_size, t.learning_rate, t.weight_decay = 40, 16, 1e-3, 0.01
  t.augment.update({"flip_h": True, "crop": 4, "rotation": 0.0, "mixup": 0.0})
  t.fold_chunk = 9  # sequences are memory-heavy: 9 (seed, fold) models at a time
  if mode == "apex_window" and representation == "sequences":
    config.dataset.sequence.length = 6  # M2: 6 frames around the apex
  if synthetic:
    synthetic_sequences(config, length=length_synthetic)
  return config


def synthetic_sequences(config, *, length: int | None = None):
  """CPU-sized sequence variant (M1-M4, ConvLSTM): short clips, 32x32, a tiny CNN-LSTM.

  The synthetic clips are 6-12 frames (M1 pads them to 12, M2 takes 6 around the apex, M3 pads
  to the longest) with 4x the default synthetic motion, and raw gray frames are taken relative to
  the onset frame: at 32x32 the default motion is ~0.4 px, a ~2 grey-level change next to a
  subject's face, and a frame CNN with global pooling does not see it in CPU-minutes (measured:
  train accuracy at chance). Real configs keep raw frames (`sequence.subtract_onset=False`).
  """
  t = config.train
  casme2_synthetic(config, image_size=32, epochs=25)
  config.dataset.synthetic_kwargs.update({"num_frames": (6, 12), "motion_scale": 0.1})
  config.dataset.sequence.length = length or min(config.dataset.sequence.length, 8)
  if config.dataset.representation == "sequences":
    config.dataset.sequence.subtract_onset = True
  config.model.kwargs.frame_features = (8, 16)
  config.model.kwargs.lstm_features = (16,)
  config.model.kwargs.dense_features = (16,)
  config.model.kwargs.dropout = 0.2
  t.batch_size, t.learning_rate = 8, 3e-3
  t.augment.crop = 2
  t.fold_chunk = 0
  return config


# ----------------------------------------------------------------------------------------------
# MEGC2019.


def megc_config(*, classes: str, synthetic: bool, nested: bool) -> ml_collections.ConfigDict:
  """Shared MEGC2019 settings (dataset, protocol, augmentation, seeds); the model is left empty.

  Recipe choices (issue 11; no real-data figure chose them). By principle: a fixed schedule with
  the last epoch (no test-subject selection), class-balanced loss over the fold's training set
  (`class_balanced=True`: its optimum matches the pooled UF1 / UAR reported), flow-aware flip TTA at
  evaluation (`train.tta.flip_h`: the model trains with the same flip, so averaging a clip with its
  mirror costs a forward pass and needs no tuning). Left to nested selection, not assumed:
  per-dataset balance (`class_balanced='per_dataset'`) and mixup 0 vs 0.2 — `nested` adds that
  grid (`megc_search`; ~13x the training); its hard-synthetic figures are in docs/results.md.
  """
  if classes != "megc":
    raise ValueError(f"MEGC2019 configs use classes=megc, got classes={classes}.")
  # No `sequence` or `synthetic_kwargs` (CASME II's): the MEGC loaders refuse them
  # (microexp/loaders/megc.py).
  ds = base.dataset("megc2019_flow", classes="megc", synthetic=synthetic)
  ds.image_size = 28
  ds.flow_method = "tvl1"  # 'megc2019' (from frames) only; the release is TV-L1 already
  ds.third_channel = "strain"
  ds.gt_csv = base.placeholder(str)
  # Release only ('megc2019_flow'; None = off, so the composite loader accepts the config):
  # regions='mosaic': HTNet's 2x2 facial-region mosaic as inputs (docs/megc.md);
  # synthetic_difficulty='hard': the calibrated hard synthetic release (docs/results.md).
  ds.regions = base.placeholder(str)
  ds.synthetic_difficulty = base.placeholder(str)
  config = base.config(ds)

  t = config.train
  t.protocol = "loso"
  t.selection = "last"
  t.epochs = 150
  t.batch_size = 32
  t.optimizer = "adamw"
  t.learning_rate = 3e-3
  t.weight_decay = 1e-3
  t.warmup_epochs = 5.0
  t.label_smoothing = 0.1
  t.class_balanced = True
  # 28x28 flow: a 2 px shift and 8 degrees are within a face's registration error.
  t.augment = ml_collections.ConfigDict({
      "flip_h": True, "flip_v": False, "crop": 2, "rotation": 8.0, "mixup": 0.2})
  t.seeds = (0, 1, 2, 3, 4)
  t.final_seeds = (0, 1, 2, 3, 4)
  # By principle: the training flips make the model mirror-consistent, so averaging each clip
  # with its flow-aware mirror at test time costs one more forward pass and no tuning.
  t.tta.flip_h = True
  if nested:
    megc_search(config)
  if synthetic:
    base.synthetic_training(config, epochs=25, seeds=(0, 1))
  return config


def megc_search(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`:nested`: nested selection (microexp/train/search.py) of what principle cannot settle.

  - class_balanced True | 'per_dataset': pooled balance matches the pooled UF1 / UAR, per-dataset
    balance keeps SAMM's negative majority from dominating its subjects (issue 11, item 4);
    which serves the composite better is a property of the real data.
  - augment.mixup 0 | 0.2: mixup regularises 442 clips but blurs weak classes.
  Four candidates, scored by UF1 over 3 inner folds of each fold's training subjects, the best
  retrained per fold: 13x the training of the plain config.
  """
  config.train.search = ml_collections.ConfigDict({
      "class_balanced": (True, "per_dataset"), "augment": {"mixup": (0.0, 0.2)}})
  config.train.search_inner_folds = 3
  config.train.search_metric = "uf1"
  return config


# ----------------------------------------------------------------------------------------------
# Uncropped apex-flow datasets (CAS(ME)^3, DFME) and the composite of every dataset.


def uncropped_config(*, name: str, classes: str | None, class_sets: dict, synthetic: bool,
                     synthetic_kwargs: dict) -> ml_collections.ConfigDict:
  """STSTNet on 28x28 apex flow (u, v, strain) of an apex-flow-only dataset of uncropped frames
  (CAS(ME)^3, DFME), LOSO. class_sets: `classes=` value (None: not given) -> the dataset's subset.
  No `sequence` fields: those loaders build apex flow only and refuse them."""
  if classes not in class_sets:
    raise ValueError(f"{name} configs take classes={sorted(k for k in class_sets if k)}, got "
                     f"classes={classes}.")
  ds = base.dataset(name, classes=class_sets[classes], synthetic=synthetic)
  ds.synthetic_kwargs = ml_collections.ConfigDict(synthetic_kwargs)
  # Uncropped frames: the face is a small part of the frame, and head roll between onset and apex
  # would become flow; dlib landmarks level the eye line, one box per clip (docs/datasets.md).
  # Recorded in model.json: predict aligns its input the same way.
  ds.alignment = "landmarks"
  ds.image_size = 28
  ds.third_channel = "strain"
  config = ststnet(base.config(ds))
  return shallow_flow_training(config, synthetic=synthetic)


# Member datasets of the synthetic composite (configs/ststnet_lodo.py, au_lodo.py): small trees in
# each official layout; uncropped frames (SAMM, CAS(ME)^3, DFME) aligned with landmarks.
COMPOSITE_MEMBERS = ("casme2", "casme3", "dfme", "samm", "smic")
_UNCROPPED = ("casme3", "dfme", "samm")
_SYNTHETIC_MEMBERS = {
    "casme2": dict(num_subjects=4, clips_per_subject=8, image_size=(85, 70), num_frames=(8, 12),
                   seed=0),
    "casme3": dict(num_subjects=4, clips_per_subject=7, image_size=(96, 80), num_frames=(8, 12),
                   seed=0),
    "dfme": dict(num_subjects=(4, 1, 1), clips_per_subject=7, image_size=(96, 80),
                 num_frames=(8, 12), seed=0),
    "samm": dict(num_subjects=4, clips_per_subject=7, image_size=(96, 80), num_frames=(8, 12),
                 seed=0),
    "smic": dict(num_subjects=3, clips_per_subject=7, image_size=(96, 80), num_frames=(8, 12),
                 seed=0),
}


def composite_config(*, classes: str, synthetic: bool, members=COMPOSITE_MEMBERS
                     ) -> ml_collections.ConfigDict:
  """A composite of registered datasets (microexp/loaders/composite.py), leave-one-dataset-out,
  MEGC's 3 classes, 28x28 apex flow with optical strain, STSTNet; `synthetic` writes a small
  tree of every member."""
  if classes != "megc":
    raise ValueError(f"composite configs use classes=megc, got classes={classes}.")
  ds = base.dataset("composite", classes="megc", synthetic=synthetic, alignment=False)
  ds.common_classes = "megc"
  ds.image_size = 28
  ds.flow_method = "tvl1"
  ds.third_channel = "strain"
  ds.members = ml_collections.ConfigDict()
  for name in members:
    member = ml_collections.ConfigDict()
    if name in _UNCROPPED:
      member.alignment = "landmarks"
    member.manual_dir = base.placeholder(str)
    if synthetic:
      member.synthetic_kwargs = ml_collections.ConfigDict(_SYNTHETIC_MEMBERS[name])
    ds.members[name] = member
  config = ststnet(base.config(ds))
  config.train.protocol = "lodo"
  return shallow_flow_training(config, synthetic=synthetic)


_SPOTTING_TRAIN_FIELDS = (
    "task", "protocol", "selection", "select_metric", "epochs", "batch_size", "eval_batch_size",
    "eval_every", "optimizer", "momentum", "learning_rate", "weight_decay", "warmup_epochs",
    "schedule", "grad_clip", "label_smoothing", "class_balanced", "augment", "tta", "freeze",
    "seeds", "final_seeds", "fold_parallel", "fold_chunk", "memory_budget_gb",
    "checkpoint_every_s", "tensorboard")


def spotting_config(arg: str | None, *, dataset: str) -> ml_collections.ConfigDict:
  """The learned spotter (microexp/models/spotter.py) trained LOSO on a long-video dataset
  (`config.train.task='spot'`, microexp/train/spot_protocol.py, docs/spotting.md).

  By principle, not from a figure: a fixed schedule with the last epoch, the soft apex labels of
  the MEGC baselines (microexp/train/spot_labels.py), probability threshold 0.5 (a row is inside an
  expression when the spotter says so more likely than not), the 0.5 s micro-expression bound of
  the field for the macro guard, and every negative row kept on the real sets.
  """
  opts = base.parse_arg(arg, synthetic=False)
  config = ml_collections.ConfigDict()
  config.dataset = ds = ml_collections.ConfigDict()
  ds.name = dataset
  ds.synthetic = bool(opts.synthetic)
  ds.manual_dir = base.placeholder(str)
  ds.data_dir = base.placeholder(str)
  # Flow rows of 28 x 28 (u, v, magnitude) between frames k = round(fps * 0.4 / 2) apart, on the
  # face at 64 px (microexp/loaders/long_videos.py); SoftNet's / STSTNet's input size.
  ds.image_size = 28
  ds.flow_method = "farneback"
  ds.work_width = 64
  ds.micro_duration = 0.4
  ds.alignment = "box"
  ds.flow_normalization = "per_clip"  # of the recogniser's interval flow (STR)
  ds.synthetic_kwargs = ml_collections.ConfigDict()
  config.model = ml_collections.ConfigDict({
      "name": "spotter", "kwargs": {"hidden": 64, "dropout": 0.2}, "dtype": "float32"})
  # max_macro_duration: MEGC's macro-expressions last 0.5-4 s (a rise and a fall within it pair).
  config.spot = ml_collections.ConfigDict({"threshold": 0.5, "max_duration": 0.5,
                                          "max_macro_duration": 4.0, "negative_stride": 1,
                                          "heuristic": False})
  # The shared training defaults (configs/base.py:train) the protocol reads, and its own values.
  config.train = t = base.train_fields(
      _SPOTTING_TRAIN_FIELDS, task="spot",
      select_metric="loss",  # read by the loop's monitoring only: nothing is selected
      epochs=20, batch_size=64, eval_batch_size=256, warmup_epochs=1.0, label_smoothing=0.0,
      class_balanced=False,
      augment=ml_collections.ConfigDict({"flip_h": True, "flip_v": False, "crop": 0,
                                         "rotation": 0.0, "mixup": 0.0}),
      seeds=(0,), final_seeds=(0,),
      fold_parallel=ml_collections.FieldReference("auto", field_type=object), tensorboard=False)
  if opts.synthetic:
    ds.synthetic_kwargs = ml_collections.ConfigDict({
        "num_subjects": 4, "videos_per_subject": 2, "duration": 30.0})
    ds.image_size = 16
    t.epochs = 25
    t.learning_rate = 5e-3
    config.spot.negative_stride = 4  # CPU-sized: a quarter of the rows far from any expression
    config.spot.heuristic = True  # the heuristic's figures beside the learned spotter's
  return config
