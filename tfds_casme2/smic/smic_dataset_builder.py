"""SMIC-HS (Li et al. 2013) as a TFDS dataset: onset->apex flow of the registered face frames.

Read with `microexp.data.smic` (the emotion is the folder name; SMIC has no apex: it is spotted
from the flow, and every clip's spotted frame is in the build log). `reg_image` frames are already
cropped and registered, so no face box is searched (`face_detector` 'none').
"""

from __future__ import annotations

import pathlib

from tfds_casme2 import apex_flow_base as apex_flow
from microexp.data import smic

FPS = 100


class Builder(apex_flow.ApexFlowBuilder):
  """DatasetBuilder for SMIC-HS (micro-expressions)."""

  DATASET_TITLE = "SMIC-HS"
  EMOTIONS = smic.SMIC_EMOTIONS
  CROP_FACES = False
  HOMEPAGE = "https://www.oulu.fi/cmvs/node/41319"
  CITATION = """\
@inproceedings{li2013smic,
  title={A Spontaneous Micro-expression Database: Inducement, Collection and Baseline},
  author={Li, Xiaobai and Pfister, Tomas and Huang, Xiaohua and Zhao, Guoying and
          Pietik{\\"a}inen, Matti},
  booktitle={IEEE International Conference on Automatic Face and Gesture Recognition}, year={2013}}
"""
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  SMIC is licensed: request it from its authors and unpack it so that manual_dir holds:

    manual_dir/HS/s1/micro/<negative|positive|surprise>/s1_ne_01/reg_image<frame>.bmp ...
    (or manual_dir/s1/... directly)

  Then: tfds build tfds_casme2/smic --manual_dir=PATH --config=apex_flow
  """
  BUILDER_CONFIGS = apex_flow.builder_configs("SMIC-HS")

  def _list_clips(self, manual_dir: pathlib.Path):
    clips, report = smic.list_clips(manual_dir)
    items = [apex_flow.flow_clip(c, f"{c.record.subject}/{c.record.filename}",
                                 apex_flow.clip_meta(c, clip_id=c.record.filename, fps=FPS))
             for c in clips]
    return items, report
