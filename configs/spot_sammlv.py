"""The learned spotter on SAMM Long Videos (200 fps), LOSO (docs/spotting.md)."""

from __future__ import annotations

from configs import common


def get_config(arg=None):
  return common.spotting_config(arg, dataset="samm_lv")
