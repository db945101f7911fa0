"""Instructions cut short by the end of the bytes, against objdump 2.40 (the oracle).

objdump fetches an instruction's bytes in a fixed order and gives up (``.byte 0x..``, or the
first byte's prefix name) at the first byte it cannot read; what it needs before it decides
"(bad)" is therefore part of the length.  Each case below is the tail of a random 15-byte
string where x86vm disagreed before; the expected length and text always come from objdump
(each string is its own symbol, so its end is the end of the buffer), never typed here.
"""

from __future__ import annotations

import pytest

from objdump_oracle import objdump_strings
from x86vm.disasm.att import format_att
from x86vm.disasm.intel import format_intel
from x86vm.isa import decode

needs_objdump = pytest.mark.oracle("objdump-2.40")

# mode -> hex strings; the rule each group pins is in the comment above it
CASES: dict[int, list[str]] = {
    64: [
        # XOP 8F: a map outside 8..15 is (bad) from the ModRM alone; 8..15 needs the two XOP
        # bytes and the opcode, a valid map also the ModRM; an invalid map keeps REX shown
        "8f79", "8f7e", "8fcb", "8fcb11", "8fcb1122", "8fe87811", "8fea36e6", "8fea36e6c0",
        "478fe2d344", "478fcb1122", "478feb1122", "4d8f36bf", "648fdb", "8f14", "418f64",
        # VEX C4 needs three bytes before its map check, C5 two; then the ModRM of every
        # opcode except map 0F 77
        "c40639", "c4063911", "c53a9d", "c53a9dc0", "c4e27877", "c4e17877", "c5f877",
        # VEX 0F 77 ignores VEX.pp
        "c5fa77", "c5fb77", "c5fd77", "c5fe77", "c4e1797790",
        # C5 0F 77 whose VEX byte reads as a ModRM naming a SIB: two more bytes are read
        "c52477", "c5247790", "c524779090", "c57c7790", "c57c779090", "c5a47790",
        "c5fc7790", "c5207790", "c4617c77",
        # EVEX: the opcode before the map check, the U bit, then the ModRM and its SIB
        "629c8058c7", "62036a6e06", "4762af9ded22", "426295794720", "4762fd9ded22",
        "62c1b78abd94", "646273b5f8f93c", "62f17cecfec1", "62f174ecfec1", "62f17c6cfec1",
        "62f1fcecfec1", "62f17cec58c1",
        # gathers/scatters: registers that must differ and a missing mask are "/(bad)"
        # (an EVEX gather's index only in AT&T), "{evex}" as objdump's templates have it
        "c4e279900c08", "c4e271900c08", "c4e249900c08", "62f27d08900c08", "62f27d0890c1",
        "62f27d08a0c1", "62f27d08a00c08", "62f27d49900c08", "62f1fd08e2c9", "62f17d08e2c9",
        "62f27d0847c9", "62f2fd2816c9", "62f17d08c503f1", "62f17d18c503f1", "62f27e0850c1",
        "62f1ff192a03", "62f1fd0858c1",
        # VEX BadOp forms print their vector registers by VEX.L: gathers, vpextrw, AVX-NE
        "c4e27990c1", "c4e27d90c1", "c4e179c503e1", "c4e27cb0c1", "c4e27db1c1",
        # an unused EVEX.vvvv is its four bits (V' clear is fine), EVEX.R' on a general
        # register destination is (bad), FP16 broadcasts scale disp8 by EVEX.W, vcomisd
        # with W0 has no "{evex}"
        "62f17e101103", "62f17e001103", "62f1fe00e603", "6261fe3b7984036241479b",
        "6226fd54be5129", "62f17d002fc1", "62f1fd082fc1",
        # L'L=3 is an early (bad): prefix words and mask; a memory operand objdump cannot
        # form keeps its segment override ("%fs:(bad)")
        "666242fce572", "2e4062c2ff7c77", "6462b27d0c924d", "3e62b27d0c924d",
        "64f30f1b0500000000",
        # vpshufbitqmb with EVEX.b: objdump broadcasts dwords ({1to4}, disp8*4)
        "62d215188f785b", "62d215388f785b", "62d215588f385b", "62d215088f785b",
        # only the last F3/F2 is named by its role (rep, xrelease, xacquire)
        "f2f38900", "f3f38900", "f3f28900", "f3f3aa", "f3f2aa", "f2f3aa", "f0f2f30100",
        "f0f3f20100", "f3f2a6", "f2f2ff10", "f3f3c3", "f0f2f20100", "f0f3f30100",
        "f2f2f38900", "f3f2f38900",
        # MPX in 64-bit mode ignores 67: 64-bit registers, "addr32" printed
        "670f1a00", "67f30f1b00", "67660f1a00", "67f20f1a00", "670f1b04c8", "67f30f1a00",
        "670f1a95ff431e27", "670f1a0500000000",
        # once a VEX/XOP/EVEX prefix was read, a truncated instruction's REX prints as .byte
        "4ac4e17911", "4a62f17c4810", "4a8fe87811", "4ac5fa4a", "47c4e2d344", "4dc4fe14",
        "664ac5fa4a", "65c56b22",
        # the SIB byte a ModRM names is read before an opcode is found invalid
        "c6bc", "c6bc11", "fe3c", "0fc54c", "0fc54c11", "0f38ff04", "0f2004",
        # 0F 24-26 and 0F 7A/7B: no instruction, but the ModRM is read
        "0f24", "0f25", "0f26", "0f7a", "0f7b", "0f2611",
        # VEX (bad)s decided after the operands: 66-only and ps/pd forms with another pp,
        # an unused vvvv; not the ps/pd/ss/sd prefix tables
        "c5f86880", "c5f8688011223344", "c4e3780f8011223344", "c4e3780f801122334455",
        "c55e156a", "c5a257b7", "c5f16e80", "c5fb5280", "c5b62eb548c8",
        # legacy 66-only SSE forms without 66 read their operands too
        "0f6c9b", "f30f6c9b", "f30f6c9b11223344",
        # XOP with a VEX.pp: the SIB byte is read before the (bad)
        "8f48cde1ac", "8f48cde1ac11223344",
        # FWAIT before an invalid x87 register form is part of the (bad)
        "9bd9da", "9bdfff", "9bd9da90",
        # prefixes, FWAIT, then another prefix: the FWAIT instruction ends there
        "3e9bf3", "3e9bf3d9d0", "3e9b9bd9d0", "3e9b41d9d0", "2e9b4e", "3e9b", "9b3ef3d9d0",
        # a FWAIT after other prefixes (FWAIT among them) ends the run: FWAIT with the others
        "9b3e9b90", "9b2e9b90", "9b3e3e9b90", "9b3ef39b90", "9b3e669b90", "9b3e9b3e9b90",
        "9b9b90", "9b3e9bd9d0", "9b3e9b", "3e9b90", "9b3e90",
    ],
    32: [
        "8f8d32", "8fcd", "8f20", "668f20", "c5d3686c29", "c5d3686c2911", "c4e11feeb9",
        "c5ecd1a8", "c6bc", "67c6bc", "9b65daed", "0f6d50", "8fca891194", "9b3e9b90",
        "9b363e9b90", "9b3ef39b90", "9bdbe4", "9bdbe0", "9bdbe1", "dbe4", "3e9bdbe4",
        # objdump keeps XOP.R outside 64-bit mode: xmm8+ and r8d+ in ModRM.reg
        "8f097880c1", "8f697880c1", "8f49788001", "8f6a7810c144332211", "8f69e09b19",
        "8f6978cbc1",
        # EVEX (bad): the mask is printed when all of vvvv (not only its low 3 bits) is
        # unused, also for L'L=3 without rounding
        "62c23f86f2", "62d5bf3bfc", "62f63ef3d1", "f062d53fe4f4", "62f17cecfec1",
        "62f174ecfec1", "62f17c6cfec1", "62f17cfcfec1", "62f17ce4fec1",
        # MPX with 16-bit addressing: the memory operand is (bad), no displacement read
        "670f1a80aabbccdd", "670f1a06aabb",
        # (bad)s objdump decides after the operands (map column "!", 66-only forms, unused
        # vvvv, {z} without a mask): no prefix words, and a cut-off operand truncates
        "f2430f1792", "f30fec", "f30fc34d65", "f20f1700", "660f0900", "f30f38c9c1",
        "c5e9f7c0", "c55e156a", "62f17c891003", "62f17c89100311",
        # EVEX: a W-letter {bad} (vadds{bad}), W ignored (vaddps with W1), a late W check
        # (vandps with W1), pp ignored (vpshrdw), the mask and {rn-bad} on an early (bad),
        # {rz-bad} in the first free operand slot, REX hidden before an EVEX.U (bad)
        "627695f5a8ec", "62f1fe0958c1", "62f1fc0958c1", "62f1fc0954c1", "62f1fc095403",
        "6213973272f8f7", "62f17c1900c1", "6213fd7d03d836", "4962e10a", "4562f54258",
        # EVEX.b on memory: {1toN} by W on a full-vector operand, {bad} on moves with W0
        # (before the mask); with W1 {1toN} by the vector length on other operands (Intel
        # {bad}) but quadwords and after a scalar destination; Intel {1toN} after BCST
        # only when no operand showed the vector length
        "62f1fd39ed4301", "62f1fc19104301", "62f17c19104301", "62f17c191103",
        "62f1fc191103", "62f17c192b03", "62f1fe195803", "62f1fd196e03", "62f1fd19d603",
        "62f5fd195b03", "62f17f196f03", "62f2fe192903", "62f1ff195803", "62f57d197e03",
        # objdump's table order: vector length before a 66-only prefix check, W late for
        # vmovaps, vmovw at any length
        "62f27d0836c1", "62f27e2836c1", "62f3fc4923c1", "62f3ff2900c1", "62f5fd296ec1",
        "62f1fc0928c1", "62f27d09c60b", "62f27e0850c1", "62f27d092ac1", "62f17d09e7c1",
        # EVEX BadOp (the 62 byte alone, mask, {rX-bad}, the W {bad} letter), unsized VSIB
        # (bad) with EVEX.b, DistinctDest, vcmps{bad} with its condition, vp2intersect {sae}
        "62f27f099ac1", "62f2ff199ac1", "62f27d4993c1", "62f17d19c503f1", "62f2fe09a0c1",
        "62f27d199003", "62f6fe29d7c9", "62f67f1957c1", "62f1fe09c2c111", "62f3fe19c2f111",
        "62f27f1968c1",
        # vmovss/vmovsd register stores print the VEX.L/EVEX.L'L-sized register
        "c5ff11ca", "62f1ff4811ca",
        # a late (bad) in 32-bit code: operand bytes cut off, no prefix words
        "62e6cfaab87c0d", "6762e1ffb9d313",
        # EVEX BadOp, DistinctDest and EVEX.b by W on a quadword store in 32-bit code
        "62f27f099ac1", "62f6fe29d7c9", "62f1fd19d603", "62f27d4993c1",
        # objdump checks all four VEX/EVEX.vvvv bits for "unused" also in 32-bit code;
        # DistinctDest compares vvvv's low bits though V' makes its operand (bad)
        "c4e1396ec0", "62f13d086ec0", "62e1bec36f6dc9", "62d6bf115702", "62e6af10d79370257a68",
        "64670f1a80aabbccdd", "f3f262f37f6644",
    ],
    16: [
        "8f4cf4", "668f20", "67c6bc", "67c6bc11", "c6bc", "c5dd7081", "c4e1a257a9",
        "0f6d50", "9bdfff", "9b3e9b90", "9b3e3e9b90", "8f69f89b19", "8f68508ea475912a",
        "8f6a7810c144332211", "62d2bd7bf4", "62c17cecfe", "62e3bd9ea8", "62f53da9aa",
        "62d215188f785b", "f3f3aa",
        # MPX with 16-bit addressing: the memory operand is (bad), no displacement read
        "0f1a80aabb", "660f1a80aabb", "f30f1a80aabb", "f20f1a80aabb", "0f1b80aabb",
        "660f1b80aabb", "f30f1b80aabb", "f20f1b80aabb", "0f1a06aabb", "0f1a31", "0f1b3f",
        "670f1a80aabbccdd",
        "62e1e4a074ae",
    ],
}


@needs_objdump
@pytest.mark.parametrize("mode", [64, 32, 16])
@pytest.mark.parametrize("intel", [False, True], ids=["att", "intel"])
def test_truncated_and_bad_forms_match_objdump(mode: int, intel: bool) -> None:
    strings = [bytes.fromhex(h) for h in CASES[mode]]
    expected = objdump_strings(strings, mode, intel)
    fmt = format_intel if intel else format_att
    wrong = []
    for s, (length, text) in zip(strings, expected, strict=True):
        insn = decode(s, 0, 0, mode)
        got = (insn.length, fmt(insn))
        if got != (length, text):
            wrong.append(f"{s.hex()}: objdump {(length, text)!r}, x86vm {got!r}")
    assert not wrong, "\n".join(wrong)
