"""Dense optical flow, optical strain and flow images for micro-expressions.

One function per method, all on grayscale uint8 frames `[H, W]`, all returning float32 `[H, W, 2]`
(u = horizontal, v = vertical displacement in pixels, such that `next[y + v, x + u] ~ prev[y, x]`):

- `farneback`: OpenCV Farneback polynomial expansion (the thesis's flow).
- `tvl1`: OpenCV contrib Dual TV-L1 (the field's standard for apex flow, e.g. STSTNet, OFF-ApexNet).
- `dis`: OpenCV DIS, fast; quality set by a preset.

`apex_flow_image` turns an onset/apex pair into the 3-channel network input; `clip_flows` runs a
method over a clip; `map_clips` runs a per-clip function over many clips in worker processes;
`map_threads` runs per-frame-pair work on a thread per core (OpenCV's flow releases the GIL).
"""

from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
import os
from typing import Any, Callable, Iterable, Iterator

import cv2
import numpy as np

# The 3 channels of a flow image, in order.
FLOW_CHANNELS = ("u", "v")
THIRD_CHANNELS = ("magnitude", "strain")
# `config.dataset.flow_normalization`: how flow images are scaled before a model sees them.
FLOW_NORMALIZATIONS = ("per_clip", "none")
DEFAULT_FLOW_NORMALIZATION = "per_clip"

_DIS_PRESETS = {
    "ultrafast": cv2.DISOpticalFlow_PRESET_ULTRAFAST,
    "fast": cv2.DISOpticalFlow_PRESET_FAST,
    "medium": cv2.DISOpticalFlow_PRESET_MEDIUM,
}


def farneback(prev: np.ndarray, next: np.ndarray, *, pyr_scale: float = 0.5, levels: int = 3,
              winsize: int = 15, iterations: int = 3, poly_n: int = 5,
              poly_sigma: float = 1.2) -> np.ndarray:
  """Farneback flow (OpenCV defaults of the tutorial). prev, next: uint8 [H, W] -> [H, W, 2]."""
  flow = cv2.calcOpticalFlowFarneback(prev, next, None, pyr_scale, levels, winsize, iterations,
                                      poly_n, poly_sigma, 0)
  return flow.astype(np.float32, copy=False)


def tvl1(prev: np.ndarray, next: np.ndarray, *, scales: int = 5, warps: int = 5,
         tau: float = 0.25, lambda_: float = 0.15, theta: float = 0.3, epsilon: float = 0.01,
         inner_iterations: int = 30, outer_iterations: int = 10, scale_step: float = 0.8,
         median_filtering: int = 5) -> np.ndarray:
  """Dual TV-L1 flow (OpenCV contrib; defaults are OpenCV's). prev, next: uint8 [H, W] -> [H, W, 2].

  `scales` and `warps` set most of the cost: 3/3 is about twice as fast as the default 5/5.
  """
  algo = cv2.optflow.DualTVL1OpticalFlow_create(
      tau=tau, lambda_=lambda_, theta=theta, nscales=scales, warps=warps, epsilon=epsilon,
      innnerIterations=inner_iterations, outerIterations=outer_iterations, scaleStep=scale_step,
      medianFiltering=median_filtering)
  return algo.calc(prev, next, None).astype(np.float32, copy=False)


def dis(prev: np.ndarray, next: np.ndarray, *, preset: str = "medium") -> np.ndarray:
  """DIS flow. preset: 'ultrafast' | 'fast' | 'medium'. prev, next: uint8 [H, W] -> [H, W, 2]."""
  if preset not in _DIS_PRESETS:
    raise ValueError(f"Unknown DIS preset {preset!r}; choose one of {sorted(_DIS_PRESETS)}.")
  algo = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])
  return algo.calc(prev, next, None).astype(np.float32, copy=False)


METHODS: dict[str, Callable[..., np.ndarray]] = {"farneback": farneback, "tvl1": tvl1, "dis": dis}


def _check_pair(prev: np.ndarray, next: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Validates a frame pair; squeezes a trailing channel of 1."""
  frames = []
  for name, frame in (("prev", prev), ("next", next)):
    frame = np.asarray(frame)
    if frame.ndim == 3 and frame.shape[-1] == 1:
      frame = frame[..., 0]
    if frame.ndim != 2:
      raise ValueError(f"Optical flow needs grayscale frames [H, W]; {name} has shape {frame.shape} "
                       "(convert colour frames with cv2.cvtColor(..., cv2.COLOR_RGB2GRAY)).")
    if frame.dtype != np.uint8:
      raise ValueError(f"Optical flow needs uint8 frames; {name} has dtype {frame.dtype}.")
    frames.append(np.ascontiguousarray(frame))
  if frames[0].shape != frames[1].shape:
    raise ValueError(f"Frame shapes differ: prev {frames[0].shape} vs next {frames[1].shape}.")
  return frames[0], frames[1]


def dense_flow(prev: np.ndarray, next: np.ndarray, method: str = "farneback",
               **kwargs: Any) -> np.ndarray:
  """Dense flow from `prev` to `next` with `method` ('farneback' | 'tvl1' | 'dis').

  Args:
    prev, next: uint8 [H, W] (or [H, W, 1]) grayscale frames of the same shape.
    method: a key of `METHODS`.
    **kwargs: the method's own parameters (e.g. `scales=3, warps=3` for tvl1, `preset` for dis).

  Returns:
    float32 [H, W, 2]: (u, v) displacement in pixels.
  """
  if method not in METHODS:
    raise ValueError(f"Unknown flow method {method!r}; choose one of {sorted(METHODS)}.")
  prev, next = _check_pair(prev, next)
  return METHODS[method](prev, next, **kwargs)


def _check_flow(flow: np.ndarray) -> np.ndarray:
  flow = np.asarray(flow, np.float32)
  if flow.ndim < 3 or flow.shape[-1] != 2:
    raise ValueError(f"Expected a flow field [..., H, W, 2], got shape {flow.shape}.")
  return flow


def magnitude(flow: np.ndarray) -> np.ndarray:
  """Flow magnitude sqrt(u^2 + v^2). flow: [..., H, W, 2] -> [..., H, W]."""
  flow = _check_flow(flow)
  return np.sqrt(np.square(flow[..., 0]) + np.square(flow[..., 1]))


def optical_strain(flow: np.ndarray) -> np.ndarray:
  """Magnitude of the optical strain tensor (as in STSTNet). flow: [..., H, W, 2] -> [..., H, W].

  With central differences of u, v over pixels: e_xx = du/dx, e_yy = dv/dy,
  e_xy = (du/dy + dv/dx) / 2, strain = sqrt(e_xx^2 + e_yy^2 + 2 e_xy^2) (the Frobenius norm of the
  symmetric strain tensor). It is dimensionless, zero for a pure translation and invariant to a
  uniform rescaling of the image (up to interpolation).
  """
  flow = _check_flow(flow)
  u, v = flow[..., 0], flow[..., 1]
  du_dy, du_dx = np.gradient(u, axis=(-2, -1))
  dv_dy, dv_dx = np.gradient(v, axis=(-2, -1))
  e_xy = 0.5 * (du_dy + dv_dx)
  return np.sqrt(du_dx**2 + dv_dy**2 + 2.0 * e_xy**2).astype(np.float32)


def resize_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Resizes a flow field to `size` = (H', W'), rescaling u by W'/W and v by H'/H.

  Displacements stay in pixels *of the resized image*, so a flow image means the same thing at any
  input resolution and any face-crop size. Area interpolation when shrinking (averages the field).
  flow: [H, W, 2] -> [H', W', 2].
  """
  flow = _check_flow(flow)
  h, w = flow.shape[:2]
  out_h, out_w = size
  interp = cv2.INTER_AREA if out_h * out_w < h * w else cv2.INTER_LINEAR
  out = cv2.resize(flow, (out_w, out_h), interpolation=interp)
  return out * np.array([out_w / w, out_h / h], np.float32)


def _resize_map(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  h, w = x.shape
  interp = cv2.INTER_AREA if size[0] * size[1] < h * w else cv2.INTER_LINEAR
  return cv2.resize(x, (size[1], size[0]), interpolation=interp)


def flow_image(flow: np.ndarray, *, third_channel: str = "magnitude",
               size: int | tuple[int, int] | None = None) -> np.ndarray:
  """A flow field as a 3-channel float image: (u, v, magnitude | strain), no normalisation.

  The flow is computed at the frames' resolution, then resized with `resize_flow` (u, v in pixels of
  the output image). Magnitude is |(u, v)| of the resized flow. Strain is computed at full resolution
  (less interpolation noise; it is dimensionless) and then resized.

  Args:
    flow: float32 [H, W, 2].
    third_channel: 'magnitude' | 'strain'.
    size: output side (square) or (H', W'); None keeps [H, W].

  Returns:
    float32 [H', W', 3].
  """
  if third_channel not in THIRD_CHANNELS:
    raise ValueError(f"Unknown third channel {third_channel!r}; choose one of {THIRD_CHANNELS}.")
  flow = _check_flow(flow)
  if size is None:
    size = flow.shape[:2]
  elif isinstance(size, int):
    size = (size, size)
  uv = resize_flow(flow, size) if tuple(size) != flow.shape[:2] else flow
  if third_channel == "magnitude":
    third = magnitude(uv)
  else:
    third = optical_strain(flow)
    if tuple(size) != flow.shape[:2]:
      third = _resize_map(third, size)
  return np.concatenate([uv, third[..., None]], axis=-1).astype(np.float32)


def apex_flow_image(onset: np.ndarray, apex: np.ndarray, *, method: str = "farneback",
                    third_channel: str = "magnitude", size: int | tuple[int, int] | None = None,
                    **flow_kwargs: Any) -> np.ndarray:
  """Onset -> apex flow image: uint8 [H, W] x 2 -> float32 [size, size, 3] = (u, v, third).

  Channel order is u, v, then magnitude or strain; values are raw (pixels of the output image for
  u, v, magnitude; dimensionless strain), not min-max scaled per image, so that the amplitude of a
  movement is kept and comparable across clips. See `flow_image`.
  """
  flow = dense_flow(onset, apex, method, **flow_kwargs)
  return flow_image(flow, third_channel=third_channel, size=size)


def clip_flows(frames: np.ndarray, *, method: str = "farneback", reference: str = "first",
               **flow_kwargs: Any) -> np.ndarray:
  """Flow of every frame of a clip. frames: uint8 [T, H, W] (or [T, H, W, 1]) -> float32 [T, H, W, 2].

  reference='first': flow t is frames[0] -> frames[t] (so flow 0 is zero); 'previous': frames[t-1]
  -> frames[t] (flow 0 is zero).
  """
  frames = np.asarray(frames)
  if frames.ndim == 4 and frames.shape[-1] == 1:
    frames = frames[..., 0]
  if frames.ndim != 3:
    raise ValueError(f"clip_flows needs grayscale frames [T, H, W], got shape {frames.shape}.")
  if reference not in ("first", "previous"):
    raise ValueError(f"Unknown reference {reference!r}; choose 'first' or 'previous'.")
  out = np.zeros(frames.shape + (2,), np.float32)

  def flow(t):
    prev = frames[0] if reference == "first" else frames[t - 1]
    return dense_flow(prev, frames[t], method, **flow_kwargs)

  for t, f in enumerate(map_threads(flow, range(1, len(frames))), start=1):
    out[t] = f
  return out


def clip_flow_images(frames: np.ndarray, *, method: str = "farneback",
                     third_channel: str = "magnitude", size: int | tuple[int, int] | None = None,
                     reference: str = "first", **flow_kwargs: Any) -> np.ndarray:
  """`clip_flows` then `flow_image` per frame: uint8 [T, H, W] -> float32 [T, H', W', 3]."""
  flows = clip_flows(frames, method=method, reference=reference, **flow_kwargs)
  return np.stack([flow_image(f, third_channel=third_channel, size=size) for f in flows])


_IN_WORKER_PROCESS = False


def thread_workers() -> int:
  """Threads `map_threads` uses: the cores this process may run on (1 in a `map_clips` worker:
  the processes already use the cores)."""
  if _IN_WORKER_PROCESS:
    return 1
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def map_threads(fn: Callable[[Any], Any], items: Iterable[Any]) -> list:
  """`[fn(item) for item in items]`, in order, on `thread_workers()` threads.

  For per-frame-pair flow work: OpenCV's flow releases the GIL, so pairs run side by side
  (Farneback on 2 cores: 1.6-1.9x one thread, benchmarks/flow_speed.py); the values are the serial
  ones. Runs inline on one core or for fewer than two items per thread.
  """
  items, workers = list(items), thread_workers()
  if workers == 1 or len(items) < 2 * workers:
    return [fn(item) for item in items]
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    return list(pool.map(fn, items))


def _single_threaded_opencv() -> None:
  # One OpenCV thread per worker process, and no flow threads: the processes already use the cores.
  global _IN_WORKER_PROCESS
  _IN_WORKER_PROCESS = True
  cv2.setNumThreads(1)


def map_clips(fn: Callable[..., Any], items: Iterable[tuple], *, workers: int | None = 1,
              context: str = "spawn") -> Iterator[Any]:
  """Yields `fn(*item)` for each item, in order, computed in `workers` processes.

  Processes are started with 'spawn' (or 'forkserver'), safe when JAX or TensorFlow threads exist in
  the parent. `fn` and the items must be picklable (`fn` a module-level function or a
  `functools.partial` of one). Items are consumed lazily, at most `2 * workers` in flight, so large
  clips are never all in memory. workers=1 runs inline; None uses os.cpu_count().
  """
  workers = (os.cpu_count() or 1) if workers is None else workers
  if workers < 1:
    raise ValueError(f"workers must be >= 1, got {workers}.")
  if workers == 1:
    for item in items:
      yield fn(*item)
    return
  ctx = multiprocessing.get_context(context)
  with concurrent.futures.ProcessPoolExecutor(
      workers, mp_context=ctx, initializer=_single_threaded_opencv) as pool:
    pending = collections.deque()
    for item in items:
      pending.append(pool.submit(fn, *item))
      if len(pending) >= 2 * workers:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()


def normalize_flow(x: np.ndarray, mode: str = DEFAULT_FLOW_NORMALIZATION) -> np.ndarray:
  """Scales ONE clip's flow image(s) as `config.dataset.flow_normalization` says.

  Args:
    x: float [H, W, C] (apex flow) or [T, H, W, C] (a flow sequence's real frames, no padding).
    mode: 'per_clip': each channel min-max scaled over the whole clip (all axes but the last) to
      -1..1, as the STSTNet / MEGC2019 release's per-image 0..255 PNGs mapped to -1..1 (a constant
      channel becomes 0); 'none': raw values (u, v, magnitude in pixels of the output image,
      dimensionless strain).

  Returns:
    float32, same shape. min-max commutes with negation, so the augmentation's horizontal flip
    (u -> -u) of a normalised image is the normalised image of the mirrored flow.
  """
  if mode not in FLOW_NORMALIZATIONS:
    raise ValueError(f"Unknown flow_normalization {mode!r}; choose one of {FLOW_NORMALIZATIONS}.")
  x = np.asarray(x, np.float32)
  if mode == "none":
    return x
  axes = tuple(range(x.ndim - 1))
  lo = x.min(axis=axes, keepdims=True)
  hi = x.max(axis=axes, keepdims=True)
  span = hi - lo
  out = 2 * (x - lo) / np.maximum(span, 1e-6) - 1
  return np.where(span > 1e-6, out, 0.0).astype(np.float32)


def flow_normalization(dataset_config) -> str:
  """`config.dataset.flow_normalization` checked, DEFAULT_FLOW_NORMALIZATION when absent/None."""
  get = getattr(dataset_config, "get", None)
  mode = (get("flow_normalization") if get else getattr(dataset_config, "flow_normalization",
                                                        None)) or DEFAULT_FLOW_NORMALIZATION
  if mode not in FLOW_NORMALIZATIONS:
    raise ValueError(f"config.dataset.flow_normalization={mode!r}; choose one of "
                     f"{FLOW_NORMALIZATIONS}.")
  return mode


def normalize_flows(x: np.ndarray, mode: str = DEFAULT_FLOW_NORMALIZATION) -> np.ndarray:
  """`normalize_flow` of every clip of a batch: [N, H, W, C] (or [N, T, H, W, C]) -> same shape."""
  if mode not in FLOW_NORMALIZATIONS:
    raise ValueError(f"Unknown flow_normalization {mode!r}; choose one of {FLOW_NORMALIZATIONS}.")
  x = np.asarray(x, np.float32)
  if mode == "none":
    return x
  return np.stack([normalize_flow(c, mode) for c in x]) if len(x) else x
