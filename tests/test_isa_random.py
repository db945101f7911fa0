"""Random bytes listed contiguously (``objdump -D -b binary``) match objdump line by line.

A seeded sample of tests/tools/isa_random.py (the full run, over 10^7 instructions per mode, is
``scripts/disasm-corpus --only random``): every line's bytes and text in both syntaxes.  The
cases the contiguous listing found first are pinned too, each followed by random bytes (what
objdump prints depends on them); the expected text is objdump's, run here.
"""

from __future__ import annotations

import random

import pytest

from tools.isa_random import compare_chunk

pytestmark = pytest.mark.oracle("objdump-2.40")

SAMPLE_BYTES = 64 * 1024

#: found by contiguous listings: REX before an EVEX escape with EVEX.U clear is shown when
#: EVEX.W is set; 3DNow! with an unknown suffix: the prefixes and REX bits its memory operand
#: used are not shown, a RIP-relative one still gets objdump's "# address" comment; an mm
#: register in ModRM.rm ignores REX.B; a SIB without base or index prints no %eiz in 16-bit
#: code (in 64-bit code with 67 an unsigned one with %eiz); 66 0F 0F is 3DNow! on xmm
#: registers; REX.W with 66 on ins/outs/in/out; no notrack with 66 in 64-bit code;
#: prefetchit0/1; objdump's MOVSXD_Fixup with 66 and REX.W; a (bad) operand after a
#: displacement (bndldx: not a family); extrq/insertq's BadOp; pmovmskb ignores F2/F3;
#: F3 0F 78/79 with memory is an early (bad); FWAITs before an invalid x87 form; movq2dq/
#: movdq2q with memory are BadOp forms; vldmxcsr/vstmxcsr ignore VEX.pp; VEX gathers'
#: "/(bad)" marks also on family members; F2/F3 0F 1C /0 with memory is a nop whose prefixes
#: still print, 66 too (objdump's PREFIX_IGNORED; F3 0F 1E likewise); any 3E on an indirect
#: branch makes the last segment prefix "notrack" and drops the override; 0F 18 /6 and /7
#: with memory but not RIP-relative in 64-bit code print a padded "nopl  " (its
#: PREFETCHI_Fixup); of two 67s before loop the last is the one used
PINNED = {
    64: ["4962e5", "4a62f6", "4262f5", "640f0f71", "660f0f71", "410f0f", "430f0f04",
         "0f0f05", "660f0f05", "410f6fc1", "410f0fc1", "678b0425", "66486d", "664ae5",
         "3e66ff", "0f1835", "0f183d", "664863", "666648", "67d30c", "0f1a25", "f20f79",
         "660f78", "f3670fd7", "f3660f78", "9b9bdbfd", "f30fd600", "c5f9ae18",
         "c57aae16", "c4a2799144", "f30f1c00", "f20f1c40", "66f30f1c00", "66f30f1e00",
         "3e64ff10", "2e3eff20", "2e0f1838", "f00f1830", "2e660f1838", "676667e1",
         "66f30f1ec8"],
    32: ["640f0f71", "26670f0f71", "660f0fc1", "0f0f05", "8b0425", "f30f1c00", "f2660f1c08",
         "3e26ff20", "2e0f1838", "676667e1"],
    16: ["640f0f71", "670f0f04", "670f0f0425", "678b0425", "67640f0f71", "f30f1c00",
         "3e64ff10", "67676667e2", "66f30f1ec8"],
}


@pytest.mark.parametrize("mode", [16, 32, 64])
def test_random_bytes_listed_contiguously_match_objdump(mode: int) -> None:
    data = random.Random(f"contiguous-{mode}").randbytes(SAMPLE_BYTES)
    for syntax, tally in compare_chunk(data, mode).items():
        assert tally.instructions > SAMPLE_BYTES // 4
        assert tally.ok, f"{syntax}: {tally.summary()}\n" + "\n".join(tally.examples)


@pytest.mark.parametrize("mode", [16, 32, 64])
def test_pinned_contiguous_cases_match_objdump(mode: int) -> None:
    rng = random.Random(mode)
    heads = [bytes.fromhex(h) for h in PINNED[mode]]
    data = b"".join(head + rng.randbytes(12) for _ in range(40) for head in heads)
    for syntax, tally in compare_chunk(data, mode).items():
        assert tally.ok, f"{syntax}: {tally.summary()}\n" + "\n".join(tally.examples)
