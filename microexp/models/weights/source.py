"""What every weight port shares: the error type, sanity checks of the file, shape checks.

The expected backbone layout is passed in by the model (`resnet.backbone_shapes`), never imported:
the ports know file formats, the model knows its shapes.
"""

from __future__ import annotations

import pathlib

import numpy as np

KERAS_NOTOP_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
                   "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
TORCHVISION_URL = "https://download.pytorch.org/models/resnet50-0676ba61.pth"  # IMAGENET1K_V1
TORCHVISION_V2_URL = "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"  # IMAGENET1K_V2

FlatKey = tuple[str, ...]  # ('params' | 'batch_stats', module, ..., leaf)


class WeightFileError(ValueError):
  """A weight file that cannot be ported; the message names the file and every problem."""

  def __init__(self, path: str | pathlib.Path, problem: str, details: list[str] | tuple = ()):
    self.path = str(path)
    self.problem = problem
    self.details = list(details)
    lines = [f"{self.path}: {problem}"] + [f"  - {d}" for d in self.details]
    super().__init__("\n".join(lines))


def check_readable(path: str | pathlib.Path) -> pathlib.Path:
  """Fails clearly on a missing file, an empty file or a Git LFS pointer instead of the weights."""
  path = pathlib.Path(path).expanduser()
  if not path.is_file():
    raise WeightFileError(path, "weight file not found.", [
        "This machine has no network access: download the file yourself and point "
        "config.model.kwargs.weights at it.",
        f"Keras ResNet50 (variant 'keras', notop): {KERAS_NOTOP_URL}",
        f"torchvision ResNet50_Weights.IMAGENET1K_V1 (variant 'torchvision'): {TORCHVISION_URL} "
        f"(IMAGENET1K_V2: {TORCHVISION_V2_URL})",
    ])
  size = path.stat().st_size
  if size == 0:
    raise WeightFileError(path, "the file is empty (interrupted download?).")
  with open(path, "rb") as f:
    head = f.read(64)
  if head.startswith(b"version https://git-lfs"):
    raise WeightFileError(path, (
        f"this is a Git LFS pointer ({size} bytes of text), not the weights. Run `git lfs pull` "
        "in its repository or download the real file."))
  return path


ExpectedShapes = dict[FlatKey, tuple[int, ...]]  # flat {(collection, *module, leaf): shape}


def modules_of(expected: ExpectedShapes) -> list[tuple[str, ...]]:
  """Module paths (e.g. ('stage1_block1', 'conv1')) holding weights, in network order."""
  seen = {}
  for key in expected:
    seen.setdefault(key[1:-1], None)
  return list(seen)


def check_shapes(path, found: dict[FlatKey, np.ndarray], expected: ExpectedShapes,
                 source_name) -> dict[FlatKey, np.ndarray]:
  """Checks ported arrays against the expected backbone; `source_name(key)` names a tensor in the file."""
  bad = [f"{source_name(k)} (-> {'/'.join(k)}): expected shape {expected[k]}, found "
         f"{tuple(v.shape)} (after layout conversion)"
         for k, v in found.items() if tuple(v.shape) != expected[k]]
  if bad:
    raise WeightFileError(path, "tensor shapes do not match ResNet50.", bad)
  return {k: np.ascontiguousarray(v, np.float32) for k, v in found.items()}
