"""The "smic" dataset of the registry: SMIC-HS apex flow (tfds_casme2/smic).

Arrays: see `microexp.loaders.flow_datasets`; `emotion` negative / positive / surprise (classes
'megc'), `subject` 's01', `fps` 100; SMIC codes no AUs (`au` is [N, 0]).
"""

from __future__ import annotations

import numpy as np

from microexp.synthetic import megc as synthetic_megc
from microexp.loaders import flow_datasets as apex_flow
from microexp.loaders import register


FIELDS = {"smic": apex_flow.FIELDS}  # config.dataset fields read (apex_flow.load)


@register("smic")
def load_smic(dataset_config) -> dict[str, np.ndarray]:
  from tfds_casme2.smic import smic_dataset_builder  # pylint: disable=g-import-not-at-top
  return apex_flow.load(dataset_config, name="smic", builder_cls=smic_dataset_builder.Builder,
                        write_synthetic=synthetic_megc.write_synthetic_smic)
