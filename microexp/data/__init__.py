"""Data layer: coding sheets, class subsets, synthetic datasets, loading to arrays."""
