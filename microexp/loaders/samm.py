"""The "samm" dataset of the registry: SAMM apex flow (tfds_casme2/samm).

Arrays: see `microexp.loaders.flow_datasets`; `emotion` is SAMM's own (anger, contempt, disgust, fear,
happiness, other, sadness, surprise; classes 'megc' maps them to MEGC2019's three), `subject`
'006' (unqualified; the composite `megc2019` qualifies it), `fps` 200.
"""

from __future__ import annotations

import numpy as np

from microexp.synthetic import megc as synthetic_megc
from microexp.loaders import flow_datasets as apex_flow
from microexp.loaders import register


FIELDS = {"samm": apex_flow.FIELDS}  # config.dataset fields read (apex_flow.load)


@register("samm")
def load_samm(dataset_config) -> dict[str, np.ndarray]:
  from tfds_casme2.samm import samm_dataset_builder  # pylint: disable=g-import-not-at-top
  return apex_flow.load(dataset_config, name="samm", builder_cls=samm_dataset_builder.Builder,
                        write_synthetic=synthetic_megc.write_synthetic_samm)
