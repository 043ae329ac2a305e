"""Reference baselines a learned model must beat: logistic regression on the raw pixels, LOSO.

Numpy only, deterministic (full-batch gradient descent from zero weights).
"""

from __future__ import annotations

import numpy as np


def pixel_logistic_regression(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, *,
                              num_classes: int, l2: float = 1e-2, steps: int = 300,
                              learning_rate: float = 0.5) -> np.ndarray:
  """Class-balanced multinomial logistic regression on standardised, flattened inputs.

  x_train: [N, ...], y_train: [N] int, x_test: [M, ...] -> predictions [M] int.
  """
  xtr = x_train.reshape(len(x_train), -1).astype(np.float64)
  xte = x_test.reshape(len(x_test), -1).astype(np.float64)
  mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
  xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
  counts = np.maximum(np.bincount(y_train, minlength=num_classes), 1)
  weights = (len(y_train) / (num_classes * counts))[y_train]
  weights /= weights.sum()
  onehot = np.eye(num_classes)[y_train]
  w, b = np.zeros((xtr.shape[1], num_classes)), np.zeros(num_classes)
  for _ in range(steps):
    z = xtr @ w + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = (p - onehot) * weights[:, None]
    w -= learning_rate * (xtr.T @ g + l2 * w)
    b -= learning_rate * g.sum(0)
  return np.argmax(xte @ w + b, 1)


def loso_predictions(inputs: np.ndarray, labels: np.ndarray, subjects: np.ndarray, *,
                     num_classes: int, **kwargs) -> np.ndarray:
  """Leave-one-subject-out predictions [N] of `pixel_logistic_regression`."""
  preds = np.empty_like(labels)
  for subject in np.unique(subjects):
    test = subjects == subject
    preds[test] = pixel_logistic_regression(inputs[~test], labels[~test], inputs[test],
                                            num_classes=num_classes, **kwargs)
  return preds
