"""The SWAR forms of the hot integer lane operations (simd_int._swar) equal the lane-by-lane
reference row of LANEWISE (itself checked against the host CPU by test_cpu_hostdiff_simd)
on edge and random vectors, 64 and 128 bits."""

from __future__ import annotations

import random

import pytest

from x86vm.cpu import simd_int as S

SWAR_NAMES = [n for n in S.LANEWISE if n[:-1] in S._SWAR]


def _vectors(rng: random.Random, w: int) -> list[int]:
    edges = (0, 1, (1 << (8 * w - 1)) - 1, 1 << (8 * w - 1), (1 << (8 * w)) - 1,
             (1 << (8 * w - 1)) + 1)
    out = []
    for _ in range(300):
        out.append(sum((rng.choice(edges) if rng.random() < 0.6 else rng.getrandbits(8 * w))
                       << (8 * w * i) for i in range(16 // w)))
    return out


@pytest.mark.parametrize("name", SWAR_NAMES)
def test_swar_equals_lanes(name):
    rng = random.Random(name)
    w = S.LANEWISE[name][0]
    vs = _vectors(rng, w)
    for a in vs:
        b = rng.choice(vs) if rng.random() < 0.8 else a
        for bits in (64, 128):
            m = (1 << bits) - 1
            assert S.lanewise(name, a & m, b & m, bits) == \
                S.lanewise_by_lanes(name, a & m, b & m, bits), (hex(a), hex(b), bits)


def test_movmsk_bytes():
    rng = random.Random(1)
    for _ in range(500):
        v = rng.getrandbits(128)
        want = sum(((v >> (8 * i + 7)) & 1) << i for i in range(16))
        assert S.movmsk(v, 1, 128) == want
        assert S.movmsk(v & (2**64 - 1), 1, 64) == want & 0xFF
