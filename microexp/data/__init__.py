"""Data layer (bottom): coding sheets, official layouts, class subsets, synthetic datasets; never
imports the TFDS builders or the loaders (microexp/loaders/)."""
