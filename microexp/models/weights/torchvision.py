"""Reads a torchvision ResNet50 state dict (.pth or .safetensors) into the 'torchvision' backbone.

Names: `conv1.weight`, `bn1.{weight,bias,running_mean,running_var}`,
`layer{1..4}.{j}.conv{1,2,3}.weight`, `layer{s}.{j}.bn{1,2,3}.*`, `layer{s}.0.downsample.{0,1}.*`.
Conv weights are OIHW and become HWIO with transpose (2, 3, 1, 0). `num_batches_tracked` and the
classifier `fc.*` are not part of the backbone and are skipped. `.pth` needs torch (imported only
here, loaded with `weights_only=True`); `.safetensors` is read with numpy alone.
"""

from __future__ import annotations

import re

import numpy as np

from microexp.models.weights import source

WeightFileError = source.WeightFileError

_BN_LEAVES = {("params", "scale"): "weight", ("params", "bias"): "bias",
              ("batch_stats", "mean"): "running_mean", ("batch_stats", "var"): "running_var"}
_SKIPPED = re.compile(r"(.*\.)?num_batches_tracked|fc\.(weight|bias)")


def torch_key(key: source.FlatKey) -> str:
  """('params', 'stage1_block1', 'proj_conv', 'kernel') -> 'layer1.0.downsample.0.weight'."""
  collection, *module, leaf = key
  if module[-1].startswith(("conv", "proj_conv")):
    suffix = "weight"
  else:
    suffix = _BN_LEAVES[(collection, leaf)]
  if module in (["conv_init"], ["bn_init"]):
    return f"{module[0].removesuffix('_init')}1.{suffix}"
  stage, block = re.fullmatch(r"stage(\d+)_block(\d+)", module[0]).groups()
  name = {"proj_conv": "downsample.0", "proj_bn": "downsample.1"}.get(module[1], module[1])
  return f"layer{stage}.{int(block) - 1}.{name}.{suffix}"


def _load_state_dict(path) -> dict[str, np.ndarray]:
  """{name: numpy array} from .safetensors (numpy only) or .pth/.pt (torch, weights_only)."""
  if path.suffix == ".safetensors":
    from safetensors import SafetensorError  # pylint: disable=g-import-not-at-top
    from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
    try:
      return dict(load_file(str(path)))
    except (SafetensorError, OSError, ValueError) as e:
      raise WeightFileError(path, f"not a readable safetensors file (truncated or corrupt?): {e}")
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise WeightFileError(path, "reading .pth needs torch; or convert it to .safetensors.") from None
  try:
    state = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # pylint: disable=broad-except  (torch raises many kinds)
    raise WeightFileError(path, (
        f"torch.load(weights_only=True) failed (truncated or corrupt download, or not a state "
        f"dict?): {type(e).__name__}: {e}")) from None
  # Training checkpoints wrap the state dict; DataParallel prefixes 'module.'.
  for wrapper in ("state_dict", "model"):
    if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
      state = state[wrapper]
  if not isinstance(state, dict):
    raise WeightFileError(path, f"expected a state dict, found {type(state).__name__}.")
  return {k.removeprefix("module."): v.detach().cpu().numpy() for k, v in state.items()
          if hasattr(v, "detach")}


def read_torchvision(path, expected: source.ExpectedShapes) -> dict[source.FlatKey, np.ndarray]:
  """Reads a torchvision ResNet50 state dict.

  Returns:
    flat {(collection, *module, leaf): float32 array} for `ResNetBackbone(variant='torchvision')`.

  Raises:
    WeightFileError: unreadable file, another architecture (every missing and unmatched key
      listed) or shapes that differ from ResNet50.
  """
  path = source.check_readable(path)
  state = _load_state_dict(path)
  shapes, expected = expected, {torch_key(k): k for k in expected}
  missing = [f"missing key {n} (-> {'/'.join(k)})" for n, k in expected.items() if n not in state]
  unmatched = [f"unmatched key {n} {tuple(v.shape)}" for n, v in state.items()
               if n not in expected and not _SKIPPED.fullmatch(n)]
  if missing or unmatched:
    raise WeightFileError(path, (
        "this state dict is not a torchvision ResNet50 (another architecture?): "
        f"{len(missing)} missing, {len(unmatched)} unmatched keys."), missing + unmatched)
  found = {}
  for name, key in expected.items():
    array = np.asarray(state[name])
    found[key] = array.transpose(2, 3, 1, 0) if array.ndim == 4 else array
  names = {k: n for n, k in expected.items()}
  return source.check_shapes(path, found, shapes, names.__getitem__)
