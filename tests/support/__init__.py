"""Test support that does not depend on the code under test: the oracle gates (which external
oracles are present, and whether a missing one skips or fails) and the raw KVM probe."""
