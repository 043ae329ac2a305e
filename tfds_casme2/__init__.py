"""TFDS builders for micro-expression datasets (one sub-package per dataset, `tfds new` layout).

Importing this package registers nothing: import a builder module
(`tfds_casme2.casme2.casme2_dataset_builder`) or point `tfds build` at its folder.
"""
