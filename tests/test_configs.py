"""Every config file: its `:arg` variants build, bad args fail clearly, and its model maps the
input its representation produces to logits [B, num_classes] (jax.eval_shape: no compile, no
training, no real initialisation)."""

from __future__ import annotations

import importlib
import pathlib

import jax
import jax.numpy as jnp
import pytest

from configs import base
from microexp.data import emotions
from microexp.models import builder

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / "configs"
# The long-video configs (no emotion classes, flow rows): tests/spotting/test_spot_configs.py.
SPOTTING = ("spot_casme2lv", "spot_sammlv", "str_megc")
CONFIGS = sorted(p.stem for p in CONFIG_DIR.glob("*.py")
                 if p.stem not in ("__init__", "base", "common") + SPOTTING)
MEGC = [c for c in CONFIGS if c.endswith("_megc")]
# Configs of the other datasets: config -> (dataset name, {':classes=' value: class subset}).
OTHER = {"ststnet_casme3": ("casme3", {None: "casme3_4", "7": "casme3_7", "3": "casme3_3"}),
         "ststnet_dfme": ("dfme", {None: "dfme_7", "7": "dfme_7", "3": "dfme_3"})}
# Composites of every dataset (leave-one-dataset-out, MEGC's classes; microexp/loaders/composite.py).
COMPOSITE = ["au_lodo", "ststnet_lodo"]
CASME2 = [c for c in CONFIGS if c not in MEGC and c not in OTHER and c not in COMPOSITE]
ARGS = {c: (["", "synthetic", "classes=megc,synthetic", "nested,synthetic"] if c in MEGC else
            ["", "synthetic", "classes=megc,synthetic"] if c in COMPOSITE else
            ["", "synthetic", "classes=3,synthetic", "classes=7"] if c in OTHER else
            ["", "synthetic", "classes=3,synthetic", "classes=7", "classes=megc,synthetic"])
        for c in CONFIGS}
THESIS = ["cnn_lstm_padded", "cnn_lstm_apex", "cnn_lstm_ragged", "cnn_lstm_flow", "flow_cnn",
          "resnet_split", "resnet_loso"]
for c in THESIS:
  ARGS[c] += ["thesis", "thesis,synthetic", "thesis,classes=thesis5", "synthetic,thesis,classes=3"]
CASES = [(c, a) for c in CONFIGS for a in ARGS[c]]


def _get_config(name: str, arg: str):
  return importlib.import_module(f"configs.{name}").get_config(arg)


def test_every_method_has_a_config():
  assert set(CONFIGS) == {
      "resnet_loso", "resnet_split", "cnn_lstm_padded", "cnn_lstm_apex", "cnn_lstm_ragged",
      "cnn_lstm_flow", "flow_cnn", "ststnet_loso", "offapexnet_loso", "convlstm_loso",
      "ststnet_megc", "offapexnet_megc", "resnet_megc", "ststnet_casme3", "ststnet_dfme",
      "htnet_megc", "ensemble_megc", "cnn_lstm_resnet", "ststnet_lodo", "au_lodo"}


def input_shape(config, batch: int = 2) -> tuple[int, ...]:
  """The shape of `inputs` the config's dataset loader returns (batch of `batch`)."""
  ds = config.dataset
  s = int(ds.image_size)
  if ds.representation == "apex_flow":
    return (batch, s, s, 3)
  t = int(ds.sequence.length)
  c = 3 if ds.representation == "flow_sequences" or not ds.sequence.grayscale else 1
  return (batch, t, s, s, c)


@pytest.mark.parametrize("name,arg", CASES)
def test_config_builds(name, arg):
  config = _get_config(name, arg)
  opts = base.parse_arg(arg, classes=None, synthetic=False, thesis=False, nested=False)
  assert config.dataset.synthetic == opts.synthetic
  if name in OTHER:
    assert config.dataset.classes == OTHER[name][1][opts.classes]
  elif not opts.thesis:  # `:thesis` picks the method's own thesis class set (test_thesis_presets)
    assert config.dataset.classes == ("megc" if name in MEGC + COMPOSITE else opts.classes or "5")
  assert config.train.fold_parallel == "auto"
  assert config.dataset.flow_normalization in ("per_clip", "none")
  if name in OTHER:
    assert config.dataset.name == OTHER[name][0]
  elif name in MEGC:
    assert config.dataset.name == "megc2019_flow"
  elif name in COMPOSITE:
    assert config.dataset.name == "composite" and config.train.protocol == "lodo"
  else:
    assert config.dataset.name == "casme2"
  if opts.synthetic:
    assert len(config.train.seeds) <= 2 and config.train.epochs <= 40
  assert emotions.get_subset(config.dataset.classes).num_classes > 1


# The real-size models (141-frame sequences, ResNet50s) take seconds each to trace: slow; their
# synthetic variants stay in the fast suite.
@pytest.mark.parametrize("name,arg", [
    pytest.param(c, a, marks=[pytest.mark.slow] if a == "" else [])
    for c in CONFIGS for a in ("", "synthetic" if c in MEGC + COMPOSITE else "classes=3,synthetic")])
def test_model_gives_logits(name, arg):
  """The real and the synthetic model on the input shape of their own representation."""
  config = _get_config(name, arg)
  # An ensemble config: every member reads the same inputs.
  for member in config.ensemble.models if "ensemble" in config else (config.model,):
    _check_logits(config, member)


def _check_logits(config, model_config):
  k = emotions.get_subset(config.dataset.classes).num_classes
  run = config.copy_and_resolve_references()
  run.model = {"name": model_config.name, "kwargs": model_config.kwargs.to_dict(),
               "dtype": "float32"}
  model = builder.from_config(run, k, pretrained=False)  # the real weights file is not shipped
  shape = input_shape(config)
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  mask = jax.ShapeDtypeStruct(shape[:2], jnp.bool_) if len(shape) == 5 else None
  rngs = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}
  variables = jax.eval_shape(lambda x, m: model.init(rngs, x, train=False, mask=m), x, mask)
  logits, _ = jax.eval_shape(
      lambda v, x, m: model.apply(v, x, train=True, mask=m, rngs={"dropout": rngs["dropout"]},
                                  mutable=["batch_stats"]), variables, x, mask)
  assert logits.shape == (shape[0], k) and logits.dtype == jnp.float32


@pytest.mark.parametrize("arg,match", [
    ("classes=4", "Unknown config argument 'classes=4'"),
    ("synthetic=no", "Unknown config argument 'synthetic=no'"),
    ("fast", "this config accepts 'classes=<subset>'"),
    ("classes=happiness+joy", r"unknown emotion\(s\) \['joy'\]"),
])
@pytest.mark.parametrize("name", ["resnet_loso", "cnn_lstm_apex", "ststnet_megc"])
def test_bad_args_give_a_clear_error(name, arg, match):
  with pytest.raises(ValueError, match=match):
    _get_config(name, arg)


@pytest.mark.parametrize("name,accepted", [
    ("resnet_loso", "'classes=<subset>' (7, 5, 3, megc, thesis5, thesis5_m5 or emotions joined "
     "by '+'), 'synthetic', 'thesis'"),
    ("ststnet_loso", "'classes=<subset>' (7, 5, 3, megc, thesis5, thesis5_m5 or emotions joined "
     "by '+'), 'synthetic'."),
    ("ststnet_megc", "'synthetic', 'nested'"),
])
def test_unknown_args_name_what_the_config_accepts(name, accepted):
  """Each config declares its keys (base.parse_arg's spec); the refusal lists them."""
  with pytest.raises(ValueError, match="this config accepts") as e:
    _get_config(name, "synthetic,fast")
  assert accepted in str(e.value)


def test_parse_arg_reads_a_spec():
  opts = base.parse_arg("synthetic,classes=Megc", classes="5", synthetic=False, thesis=False)
  assert opts.to_dict() == {"classes": "megc", "synthetic": True, "thesis": False}
  assert base.parse_arg(None, classes="5", synthetic=False).to_dict() == {
      "classes": "5", "synthetic": False}
  with pytest.raises(ValueError, match="'thesis' in 'thesis'"):
    base.parse_arg("thesis", classes="5", synthetic=False)


@pytest.mark.parametrize("name", MEGC + COMPOSITE)
def test_megc_configs_refuse_other_class_sets(name):
  for arg in ("classes=3,synthetic", "classes=5"):
    with pytest.raises(ValueError, match="classes=megc"):
      _get_config(name, arg)


def test_sequence_methods_keep_their_path():
  m1 = _get_config("cnn_lstm_padded", "synthetic").dataset
  m2 = _get_config("cnn_lstm_apex", "synthetic").dataset
  m3 = _get_config("cnn_lstm_ragged", "synthetic").dataset
  m4 = _get_config("cnn_lstm_flow", "synthetic").dataset
  # M1 pads every synthetic clip (6-12 frames) to 12 rather than cutting it.
  assert m1.sequence.mode == "pad"
  assert m1.sequence.length >= m1.synthetic_kwargs.num_frames[1]
  assert (m2.sequence.mode, m2.sequence.length) == ("apex_window", 6)
  assert _get_config("cnn_lstm_apex", "").dataset.sequence.length == 6
  assert not m1.sequence.mask_padding  # M1 feeds the padding; M3 masks it
  assert m3.sequence.mode == "ragged" and m3.sequence.mask_padding
  assert m4.representation == "flow_sequences"
  assert not _get_config("cnn_lstm_padded", "").dataset.sequence.subtract_onset


@pytest.mark.parametrize("name", [c for c in CONFIGS if c not in MEGC])
def test_nested_is_refused_outside_megc(name):
  with pytest.raises(ValueError, match="`:nested`"):
    _get_config(name, "nested")


def test_megc_nested_grid():
  """`:nested`: per-dataset balance and mixup measured by nested selection, not assumed."""
  from microexp.train import search  # pylint: disable=g-import-not-at-top
  config = _get_config("ststnet_megc", "nested")
  assert search.grid(config) == [
      {"augment.mixup": m, "class_balanced": b} for m in (0.0, 0.2) for b in (True, "per_dataset")]
  assert config.train.search_inner_folds == 3 and config.train.selection == "last"
  assert not search.grid(_get_config("ststnet_megc", ""))
  members = _get_config("ensemble_megc", "nested,synthetic").ensemble.models
  assert len(members) == 3


@pytest.mark.parametrize("name", [c for c in CONFIGS if c not in THESIS])
def test_thesis_is_refused_by_methods_the_thesis_did_not_run(name):
  with pytest.raises(ValueError, match="`:thesis` applies to the thesis's methods M1-M7 only"):
    _get_config(name, "thesis")


def test_class_subsets_by_name_and_list():
  assert base.parse_arg("classes=Happiness+surprise+repression", classes="5").classes == (
      "happiness+surprise+repression")
  config = _get_config("flow_cnn", "classes=happiness+surprise")
  subset = emotions.get_subset(config.dataset.classes)
  assert subset.class_names == ("happiness", "surprise")
  assert emotions.get_subset("thesis5").class_names == (
      "happiness", "surprise", "repression", "sadness", "disgust")
  assert set(emotions.get_subset("thesis5_m5").class_names) == (
      set(emotions.CASME2_EMOTIONS) - {"others", "disgust"})
  # '5' keeps its meaning: the CASME II paper's five, 'others' included.
  assert emotions.get_subset("5").class_names == (
      "happiness", "surprise", "disgust", "repression", "others")


def test_thesis_presets():
  """What the thesis states, per method (docs/thesis.md), and Keras' defaults where it is silent."""
  configs = {n: _get_config(n, "thesis") for n in THESIS}
  for name, config in configs.items():
    t = config.train
    assert (t.optimizer, t.learning_rate, t.weight_decay, t.batch_size) == ("adamw", 1e-3, 0, 32)
    assert (t.schedule, t.warmup_epochs, t.label_smoothing, t.class_balanced) == (
        "constant", 0, 0, False), name
    assert config.dataset.image_size == 224, name
    assert t.augment.rotation == 0 and t.augment.mixup == 0, name
  m1, m2, m3, m4 = (configs[n].dataset for n in THESIS[:4])
  assert (m1.sequence.mode, m1.sequence.length, m1.sequence.padding) == ("pad", 0, "last_frame")
  assert not m1.sequence.mask_padding and configs["cnn_lstm_padded"].train.protocol == "split"
  for ds in (m1, m2, m3):
    assert not ds.sequence.grayscale and not ds.sequence.subtract_onset  # 224x224x3 frames
  assert (m2.sequence.mode, m2.sequence.length) == ("apex_window", 6)
  assert m3.sequence.mode == "ragged" and m3.sequence.mask_padding
  assert (m4.representation, m4.sequence.mode, m4.classes) == ("flow_sequences", "ragged", "3")
  assert [configs[n].dataset.classes for n in THESIS] == ["7", "7", "7", "3", "7", "3", "3"]
  for name in ("flow_cnn", "resnet_split", "resnet_loso"):  # Keras RandomFlip, vertical included
    a = configs[name].train.augment
    assert a.flip_h and a.flip_v and not a.flow_aware, name
  assert configs["flow_cnn"].train.augment.crop > 0
  m6, m7 = configs["resnet_split"].train, configs["resnet_loso"].train
  assert m6.protocol == "split" and len(m6.test_subjects) == 6
  assert (m7.protocol, m7.epochs) == ("loso", 100)
  assert configs["resnet_loso"].model.kwargs.weights == base.RESNET50_KERAS_WEIGHTS
  # `classes=` and `synthetic` combine with it.
  small = _get_config("resnet_loso", "thesis,synthetic,classes=thesis5")
  assert small.dataset.classes == "thesis5" and small.dataset.synthetic
  assert small.train.augment.flip_v and small.dataset.image_size < 224


def test_cnn_lstm_resnet_names_the_imagenet_weights():
  config = _get_config("cnn_lstm_resnet", "")
  assert config.model.kwargs.frame_cnn == "resnet50" and config.model.kwargs.preprocess == "caffe"
  assert config.model.kwargs.weights == base.RESNET50_KERAS_WEIGHTS
  assert not config.dataset.sequence.grayscale  # 3 channels for ImageNet weights
  assert _get_config("cnn_lstm_resnet", "synthetic").model.kwargs.weights is None
