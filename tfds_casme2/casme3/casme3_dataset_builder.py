"""CAS(ME)^3 part A (Li et al. 2022) as a TFDS dataset: onset->apex flow of the face crops.

Built from the user's licensed copy (manual download) with `microexp.data.casme3` (every fixed or
dropped row is logged). Frames are uncropped (1280x720): one face box per clip is found on the
onset frame (`tfds_casme2.apex_flow_base`). One 'train' split; LOSO is done by the trainer.
"""

from __future__ import annotations

import pathlib

from tfds_casme2 import apex_flow_base as apex_flow
from microexp.data import casme3
from microexp.data.emotions import CASME3_EMOTIONS


class Builder(apex_flow.ApexFlowBuilder):
  """DatasetBuilder for CAS(ME)^3 part A (micro-expressions)."""

  DATASET_TITLE = "CAS(ME)^3 part A"
  EMOTIONS = CASME3_EMOTIONS
  CROP_FACES = True
  HOMEPAGE = "http://casme.psych.ac.cn/casme/e4"
  CITATION = """\
@article{li2022casme3,
  title={{CAS(ME)$^3$}: A Third Generation Facial Spontaneous Micro-Expression Database with Depth
         Information and High Ecological Validity},
  author={Li, Jingting and Dong, Zizhao and Lu, Shaoyuan and Wang, Su-Jing and Yan, Wen-Jing and
          Ma, Yinhuan and Liu, Ye and Huang, Changbing and Fu, Xiaolan},
  journal={IEEE Transactions on Pattern Analysis and Machine Intelligence}, year={2022}}
"""
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  CAS(ME)^3 is licensed: request it from http://casme.psych.ac.cn/casme/e4 and unpack part A so
  that manual_dir holds (the subject folders may also sit up to 3 levels below manual_dir):

    manual_dir/
      cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx     # the label sheet (.xlsx; also in annotation/)
      spNO.1/a/color/1.jpg ...                      # uncropped frames, one folder per video
      spNO.1/a/depth/...                            # ignored

  Then: tfds build tfds_casme2/casme3 --manual_dir=PATH --config=apex_flow
  """
  BUILDER_CONFIGS = apex_flow.builder_configs("CAS(ME)^3 part A")

  def _list_clips(self, manual_dir: pathlib.Path):
    clips, report = casme3.list_clips(manual_dir)
    items = [apex_flow.flow_clip(c, casme3.clip_key(c), apex_flow.clip_meta(
        c, clip_id=casme3.clip_id(c.record), fps=casme3.FPS)) for c in clips]
    return items, report
