"""The "casme3" dataset of the registry: CAS(ME)^3 part A apex flow (tfds_casme2/casme3).

Arrays: see `microexp.loaders.flow_datasets`; `emotion` is CAS(ME)^3's own (happy, disgust, fear,
anger, sad, surprise, others): use classes 'casme3_7', 'casme3_4' or 'casme3_3'.
"""

from __future__ import annotations

import numpy as np

from microexp.synthetic import casme3 as synthetic_casme3
from microexp.loaders import flow_datasets as apex_flow
from microexp.loaders import register


FIELDS = {"casme3": apex_flow.FIELDS}  # config.dataset fields read (apex_flow.load)


@register("casme3")
def load_casme3(dataset_config) -> dict[str, np.ndarray]:
  from tfds_casme2.casme3 import casme3_dataset_builder  # pylint: disable=g-import-not-at-top
  return apex_flow.load(dataset_config, name="casme3", builder_cls=casme3_dataset_builder.Builder,
                        write_synthetic=synthetic_casme3.write_synthetic_casme3)
