"""The learned spotter on CAS(ME)^2's long videos (raw frames at 30 fps), LOSO (docs/spotting.md)."""

from __future__ import annotations

from configs import common


def get_config(arg=None):
  return common.spotting_config(arg, dataset="casme2_lv")
