"""Trains and evaluates a micro-expression model (LOSO or fixed split) from a config file.

    python main.py --config=configs/resnet_loso.py:classes=5 --workdir=workdirs/resnet_loso
    python main.py --config=configs/resnet_loso.py:synthetic --workdir=workdirs/demo \
        --config.train.epochs=3

Any config field can be overridden (`--config.train.epochs=50`, `--config.train.seeds='(0,1)'`;
list-valued fields of your own configs take `'[0,1]'`). Rerunning a killed command
resumes from its last checkpoint and ends with the same metrics as an uninterrupted run.

Several hosts (one process per host, e.g. a TPU pod or a GPU cluster): pass `--multihost`; it calls
`jax.distributed.initialize()` (cluster auto-detection: SLURM, TPU, or the JAX_COORDINATOR_ADDRESS /
JAX_NUM_PROCESSES / JAX_PROCESS_ID environment variables) before any JAX computation. Every process
runs this same command; the fold mesh then spans all hosts' devices.

On a CPU, JAX sees one device per core (`--cpu_devices`, microexp/train/cpu_devices.py): the
fold-parallel engine runs a share of the folds on each, side by side.

Compiled programs are kept in XLA's persistent cache (`--compilation_cache`, default
~/.cache/microexp/xla): a rerun, another seed or a resumed run skips their compilation.
"""

from __future__ import annotations

import ast

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

FLAGS = flags.FLAGS


class ListParser(flags.ArgumentParser):
  """`--config.x='[0, 1]'` (or `'(0, 1)'`, or one value `0`) for list-valued config fields:
  ml_collections parses tuples but refuses lists ("Type <class 'list'> is not supported")."""

  def parse(self, argument):
    if not isinstance(argument, str):
      return list(argument)
    try:
      value = ast.literal_eval(argument)
    except (SyntaxError, ValueError):
      raise ValueError(f"Cannot read {argument!r} as a list; write e.g. '[0, 1]' or "
                       "'[\"sub01\", \"sub02\"]'.") from None
    return list(value) if isinstance(value, (list, tuple)) else [value]

  def flag_type(self):
    return "list"


config_flags.register_flag_parser_for_type(list, ListParser())

flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard logs and results.")
flags.DEFINE_bool("multihost", False, "Call jax.distributed.initialize() first (multi-host runs).")
flags.DEFINE_string("compilation_cache", None,
                    "Folder of XLA's persistent compilation cache ('none': off). Default: "
                    "$MICROEXP_COMPILATION_CACHE, else ~/.cache/microexp/xla.")
flags.DEFINE_string("cpu_devices", None,
                    "JAX devices the CPU is split into: 'auto' (one per core: stacked folds run "
                    "side by side) or a number. Default: $MICROEXP_CPU_DEVICES, else 'auto'.")
config_flags.DEFINE_config_file("config", None, "Training configuration file.", lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])


def _hide_accelerators_from_tensorflow():
  """Hides GPUs/TPUs from TensorFlow, should anything (a TFDS code path) import it, so that it
  never grabs accelerator memory that JAX needs. Only where JAX has an accelerator: importing
  TensorFlow costs seconds, and nothing on the training path needs it."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  tf.config.experimental.set_visible_devices([], "GPU")
  tf.config.experimental.set_visible_devices([], "TPU")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("Too many command-line arguments.")
  import jax  # pylint: disable=g-import-not-at-top

  from microexp.train import compile_cache  # pylint: disable=g-import-not-at-top
  from microexp.train import cpu_devices  # pylint: disable=g-import-not-at-top

  cpu_devices.configure(cpu_devices.count(FLAGS.cpu_devices))

  cache = compile_cache.enable(compile_cache.directory(FLAGS.compilation_cache))
  logging.info("Compilation cache: %s", cache or "off")
  if FLAGS.multihost:
    jax.distributed.initialize()
  if jax.default_backend() != "cpu":
    _hide_accelerators_from_tensorflow()
  logging.info("JAX process %d/%d, local devices: %s", jax.process_index(), jax.process_count(),
               jax.local_devices())

  from microexp.train import engine  # pylint: disable=g-import-not-at-top
  from microexp.train import tasks  # pylint: disable=g-import-not-at-top

  results = engine.run(FLAGS.config, FLAGS.workdir)
  if results is not None and tasks.from_config(FLAGS.config.train).timelines:
    from microexp.predict import timeline  # pylint: disable=g-import-not-at-top

    timeline.protocol_timelines(FLAGS.workdir)  # long videos (docs/spotting.md)


if __name__ == "__main__":
  app.run(main)
