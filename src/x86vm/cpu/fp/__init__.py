"""Floating point for the x86 CPU: exact integer arithmetic on IEEE-754 bit patterns.

:mod:`.core` holds formats, classification and the one rounding routine; :mod:`.ops` the
correctly rounded operations; :mod:`.x87ops` the x87-only helpers (FSCALE, FXTRACT, FPREM).
"""
