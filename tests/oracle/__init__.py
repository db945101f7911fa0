"""Differential-testing helpers: run GNU objdump (the oracle) and compare listings with ours."""
