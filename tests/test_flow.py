"""Optical flow: known shifts and stretches, strain, flow images, parallel map."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest

from microexp.vision import flow

_SIZE = 96
_BORDER = 16  # flow near the border is unreliable; compare the interior only


def _texture(seed: int = 0, size: int = _SIZE) -> np.ndarray:
  """Smooth random texture, uint8 [size, size]."""
  rng = np.random.default_rng(seed)
  img = cv2.GaussianBlur((rng.random((size, size)) * 255).astype(np.float32), (0, 0), 2.0)
  return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def _warp(img: np.ndarray, matrix) -> np.ndarray:
  h, w = img.shape
  return cv2.warpAffine(img, np.float32(matrix), (w, h), flags=cv2.INTER_CUBIC,
                        borderMode=cv2.BORDER_REFLECT)


def _interior(x: np.ndarray) -> np.ndarray:
  return x[_BORDER:-_BORDER, _BORDER:-_BORDER]


@pytest.mark.parametrize("method", sorted(flow.METHODS))
@pytest.mark.parametrize("shift", [(1.5, -0.75), (-2.0, 1.0)])
def test_known_shift_is_recovered(method, shift):
  dx, dy = shift
  prev = _texture()
  nxt = _warp(prev, [[1, 0, dx], [0, 1, dy]])  # content moves by (+dx, +dy)
  f = flow.dense_flow(prev, nxt, method)
  assert f.shape == (_SIZE, _SIZE, 2) and f.dtype == np.float32
  u, v = np.median(_interior(f[..., 0])), np.median(_interior(f[..., 1]))
  assert u == pytest.approx(dx, abs=0.1)
  assert v == pytest.approx(dy, abs=0.1)


def test_method_parameters_are_passed():
  prev = _texture()
  nxt = _warp(prev, [[1, 0, 1.0], [0, 1, 0]])
  coarse = flow.dense_flow(prev, nxt, "tvl1", scales=1, warps=1, outer_iterations=1,
                           inner_iterations=1)
  fine = flow.dense_flow(prev, nxt, "tvl1", scales=3, warps=3)
  # One iteration at one scale cannot converge: the parameters reached OpenCV.
  assert abs(np.median(_interior(fine[..., 0])) - 1.0) < abs(np.median(_interior(coarse[..., 0])) - 1.0)
  fast = flow.dense_flow(prev, nxt, "dis", preset="ultrafast")
  assert np.median(_interior(fast[..., 0])) == pytest.approx(1.0, abs=0.2)
  with pytest.raises(ValueError, match="DIS preset"):
    flow.dense_flow(prev, nxt, "dis", preset="slow")


def test_strain_of_translation_is_zero():
  f = np.zeros((32, 40, 2), np.float32)
  f[..., 0], f[..., 1] = 2.5, -1.0
  np.testing.assert_allclose(flow.optical_strain(f), 0.0, atol=1e-6)


def test_strain_of_linear_fields_is_analytic():
  ys, xs = np.mgrid[0:32, 0:40].astype(np.float32)
  stretch = np.stack([0.03 * xs, np.zeros_like(xs)], -1)  # e_xx = 0.03
  np.testing.assert_allclose(flow.optical_strain(stretch), 0.03, rtol=1e-5)
  shear = np.stack([0.04 * ys, np.zeros_like(xs)], -1)  # e_xy = 0.02 -> sqrt(2 * 0.02^2)
  np.testing.assert_allclose(flow.optical_strain(shear), np.sqrt(2) * 0.02, rtol=1e-5)
  rotation = np.stack([-0.01 * ys, 0.01 * xs], -1)  # antisymmetric: no strain
  np.testing.assert_allclose(flow.optical_strain(rotation), 0.0, atol=1e-6)


@pytest.mark.parametrize("method", sorted(flow.METHODS))
def test_strain_of_estimated_stretch(method):
  prev = _texture(1)
  nxt = _warp(prev, [[1.02, 0, 0], [0, 1, 0]])  # u = 0.02 x
  strain = flow.optical_strain(flow.dense_flow(prev, nxt, method))
  assert np.median(_interior(strain)) == pytest.approx(0.02, abs=0.005)


def test_magnitude():
  f = np.zeros((4, 5, 2), np.float32)
  f[..., 0], f[..., 1] = 3.0, -4.0
  np.testing.assert_allclose(flow.magnitude(f), 5.0)


def test_resize_flow_keeps_displacements_in_output_pixels():
  f = np.zeros((100, 80, 2), np.float32)
  f[..., 0], f[..., 1] = 4.0, 2.0
  out = flow.resize_flow(f, (50, 20))
  assert out.shape == (50, 20, 2)
  np.testing.assert_allclose(out[..., 0], 1.0, rtol=1e-5)  # 4 px * 20/80
  np.testing.assert_allclose(out[..., 1], 1.0, rtol=1e-5)  # 2 px * 50/100


@pytest.mark.parametrize("third", ["magnitude", "strain"])
def test_apex_flow_image_channels(third):
  onset = _texture(2, 120)
  apex = _warp(onset, [[1.02, 0, 1.0], [0, 1, 0]])
  img = flow.apex_flow_image(onset, apex, method="farneback", third_channel=third, size=28)
  assert img.shape == (28, 28, 3) and img.dtype == np.float32
  full = flow.dense_flow(onset, apex, "farneback")
  expected_uv = flow.resize_flow(full, (28, 28))
  np.testing.assert_allclose(img[..., :2], expected_uv, rtol=1e-5, atol=1e-6)
  if third == "magnitude":
    np.testing.assert_allclose(img[..., 2], flow.magnitude(expected_uv), rtol=1e-5, atol=1e-6)
  else:  # strain ~ 0.02 everywhere inside, whatever the output size
    assert np.median(img[6:-6, 6:-6, 2]) == pytest.approx(0.02, abs=0.005)


def test_clip_flows_references():
  base = _texture(3)
  frames = np.stack([_warp(base, [[1, 0, t * 0.5], [0, 1, 0]]) for t in range(4)])
  first = flow.clip_flows(frames, method="farneback", reference="first")
  prev = flow.clip_flows(frames[..., None], method="farneback", reference="previous")
  assert first.shape == (4, _SIZE, _SIZE, 2)
  np.testing.assert_array_equal(first[0], 0.0)
  u_first = [np.median(_interior(f[..., 0])) for f in first[1:]]
  u_prev = [np.median(_interior(f[..., 0])) for f in prev[1:]]
  np.testing.assert_allclose(u_first, [0.5, 1.0, 1.5], atol=0.1)
  np.testing.assert_allclose(u_prev, [0.5, 0.5, 0.5], atol=0.1)
  images = flow.clip_flow_images(frames, method="dis", size=24, third_channel="strain")
  assert images.shape == (4, 24, 24, 3)


def test_bad_input_errors():
  a = _texture()
  with pytest.raises(ValueError, match="differ"):
    flow.dense_flow(a, a[:-1])
  with pytest.raises(ValueError, match="grayscale"):
    flow.dense_flow(np.stack([a] * 3, -1), np.stack([a] * 3, -1))
  with pytest.raises(ValueError, match="grayscale"):
    flow.dense_flow(a[0], a[0])
  with pytest.raises(ValueError, match="uint8"):
    flow.dense_flow(a.astype(np.float32), a.astype(np.float32))
  with pytest.raises(ValueError, match="Unknown flow method"):
    flow.dense_flow(a, a, "lucas_kanade")
  with pytest.raises(ValueError, match="third channel"):
    flow.apex_flow_image(a, a, third_channel="angle")
  with pytest.raises(ValueError, match="flow field"):
    flow.optical_strain(np.zeros((4, 4, 3)))
  with pytest.raises(ValueError, match="clip_flows"):
    flow.clip_flows(a)


def test_map_clips_in_order_inline_and_in_processes():
  a, b = _texture(4, 48), _texture(5, 48)
  items = [(a, b), (b, a), (a, a)]
  fn = functools.partial(flow.apex_flow_image, method="dis", size=16)
  inline = list(flow.map_clips(fn, items, workers=1))
  parallel = list(flow.map_clips(fn, items, workers=2))
  assert len(parallel) == 3
  for x, y in zip(inline, parallel):
    np.testing.assert_allclose(x, y, atol=1e-5)
  np.testing.assert_allclose(inline[2], 0.0, atol=1e-3)  # identical frames: no motion
  with pytest.raises(ValueError, match="workers"):
    list(flow.map_clips(fn, items, workers=0))


def test_map_threads_in_order_and_clip_flows_equal_the_serial_ones(monkeypatch):
  frames = np.stack([_warp(_texture(6, 48), [[1, 0, 0.3 * t], [0, 1, 0.1 * t]]) for t in range(9)])
  serial = {}
  for workers in (1, 3):
    monkeypatch.setattr(flow, "thread_workers", lambda w=workers: w)
    assert flow.map_threads(lambda i: i * i, range(20)) == [i * i for i in range(20)]
    assert flow.map_threads(len, []) == []
    for reference in ("first", "previous"):
      flows = flow.clip_flows(frames, reference=reference)
      if workers == 1:
        serial[reference] = flows
      else:
        np.testing.assert_array_equal(flows, serial[reference])  # bit for bit
  np.testing.assert_array_equal(serial["first"][0], 0.0)
  assert np.median(serial["first"][8][..., 0]) > 1.5  # frame 8 moved 2.4 px right of frame 0


def test_map_clips_workers_run_their_flow_on_one_thread():
  # The processes already use the cores: no flow threads inside them.
  assert list(flow.map_clips(flow.thread_workers, [(), ()], workers=2)) == [1, 1]
  assert flow.thread_workers() >= 1
