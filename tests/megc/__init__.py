"""Tests of SAMM, SMIC-HS, the precomputed MEGC2019 flow release and the composite."""
