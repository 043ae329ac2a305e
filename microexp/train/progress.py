"""One rate-limited progress line for the whole run, with an ETA."""

from __future__ import annotations

import time

from absl import logging


class Progress:
  """Counts job-epochs over all chunks; the loop logs a line when `due()` (every `every_s` s).

  The ETA uses the rate since the first epoch of the current chunk finished (that epoch includes
  the compile), so it settles after a line or two.
  """

  def __init__(self, total_job_epochs: int, every_s: float = 10.0):
    self.total = max(int(total_job_epochs), 1)
    self.every_s = float(every_s)
    self.done = 0
    self._start = self._last_log = time.monotonic()
    self._rate_since, self._rate_done = None, 0

  def skip(self, job_epochs: int) -> None:
    """Work finished by an earlier run (resumed or already done): counted, not in the rate."""
    self.done += job_epochs

  def start_chunk(self) -> None:
    self._rate_since = None

  def add(self, job_epochs: int) -> None:
    self.done += job_epochs
    if self._rate_since is None:  # the first epoch of a chunk (compile) sets the origin
      self._rate_since, self._rate_done = time.monotonic(), self.done

  def due(self) -> bool:
    return time.monotonic() - self._last_log >= self.every_s

  def log(self, summary: str = "") -> None:
    now = time.monotonic()
    self._last_log = now
    rate = 0.0
    if self._rate_since is not None and self.done > self._rate_done:
      rate = (self.done - self._rate_done) / max(now - self._rate_since, 1e-9)
    left = max(self.total - self.done, 0)
    eta = f"ETA {left / rate / 60:.1f} min" if rate > 0 else "ETA -"
    logging.info("%d/%d job-epochs (%.0f%%), %.0f s, %s%s", self.done, self.total,
                 100.0 * self.done / self.total, now - self._start, eta,
                 f" | {summary}" if summary else "")
