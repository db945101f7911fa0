/* Host-CPU oracle for x86vm's floating-point library (tests/cpu_fp).
 *
 * Reads one case per line from stdin, runs it on this CPU, prints one line:
 *   x87 ops:  OP CW A [B]      (A, B: 80-bit patterns as 20 hex digits unless noted)
 *             -> RESULT [RESULT2] SW          (SW: status word after the operation)
 *   sse ops:  OP MXCSR A [B]   (A, B: 32/64-bit patterns, hex)
 *             -> RESULT MXCSR [EFLAGS]
 * The x87 sequence is FNINIT; FLDCW; loads; the operation; FNSTSW; FNCLEX; stores — the
 * non-waiting FNSTSW/FNCLEX let a case run with exceptions unmasked without a #MF.
 * An SSE case with an unmasked exception faults (#XM -> SIGFPE): the harness prints
 * "fault MXCSR" with the MXCSR the faulting instruction left (from the signal context). A line "flush" flushes the output.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <ucontext.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct __attribute__((packed)) { uint64_t lo; uint16_t hi; } f80;

static sigjmp_buf fault_jb;
static volatile uint32_t fault_mxcsr;
static void on_fpe(int sig, siginfo_t *si, void *ctx) {
    (void)sig; (void)si;
    ucontext_t *uc = ctx;
    fault_mxcsr = uc->uc_mcontext.fpregs->mxcsr;
    siglongjmp(fault_jb, 1);
}

static f80 p80(const char *s) {
    f80 v; char hi[5]; size_t n = strlen(s);
    if (n < 16) { v.lo = strtoull(s, 0, 16); v.hi = 0; return v; }
    v.lo = strtoull(s + n - 16, 0, 16);
    memset(hi, 0, 5); memcpy(hi, s, n - 16 > 4 ? 4 : n - 16);
    v.hi = (uint16_t)strtoul(hi, 0, 16);
    return v;
}
static void o80(f80 v) { printf("%04x%016llx", v.hi, (unsigned long long)v.lo); }

#define X87_BIN(name, insn) \
    static void name(uint16_t cw, f80 a, f80 b, f80 *r, uint16_t *sw) { \
        __asm__ volatile("fninit; fldcw %[cw]; fldt %[b]; fldt %[a]; " insn "; fnstsw %[sw]; fnclex;" \
                         "fstpt %[r]; fninit" \
                         : [r] "=m"(*r), [sw] "=m"(*sw) : [cw] "m"(cw), [a] "m"(a), [b] "m"(b)); }
X87_BIN(x_fadd, "fadd %%st(1), %%st")
X87_BIN(x_fsub, "fsub %%st(1), %%st")
X87_BIN(x_fmul, "fmul %%st(1), %%st")
X87_BIN(x_fdiv, "fdiv %%st(1), %%st")
X87_BIN(x_fscale, "fscale")
X87_BIN(x_fprem, "fprem")
X87_BIN(x_fprem1, "fprem1")
X87_BIN(x_fsqrt, "fsqrt")
X87_BIN(x_frndint, "frndint")
X87_BIN(x_fabs, "fabs")
X87_BIN(x_fsin, "fsin") X87_BIN(x_fcos, "fcos") X87_BIN(x_f2xm1, "f2xm1")
X87_BIN(x_fpatan, "fpatan") X87_BIN(x_fyl2x, "fyl2x") X87_BIN(x_fyl2xp1, "fyl2xp1")
#define X87_TWO(name, insn) \
    static void name(uint16_t cw, f80 a, f80 *r, f80 *r2, uint16_t *sw) { \
        __asm__ volatile("fninit; fldcw %[cw]; fldt %[a]; " insn "; fnstsw %[sw]; fnclex;" \
                         "fstpt %[r]; fstpt %[r2]; fninit" \
                         : [r] "=m"(*r), [r2] "=m"(*r2), [sw] "=m"(*sw) : [cw] "m"(cw), [a] "m"(a)); }
X87_TWO(x_fptan, "fptan") X87_TWO(x_fsincos, "fsincos")
X87_BIN(x_fchs, "fchs")

static void x_fxtract(uint16_t cw, f80 a, f80 *r, f80 *r2, uint16_t *sw) {
    __asm__ volatile("fninit; fldcw %[cw]; fldt %[a]; fxtract; fnstsw %[sw]; fnclex;"
                     "fstpt %[r]; fstpt %[r2]; fninit"
                     : [r] "=m"(*r), [r2] "=m"(*r2), [sw] "=m"(*sw) : [cw] "m"(cw), [a] "m"(a));
}

#define X87_CMP(name, insn) \
    static void name(uint16_t cw, f80 a, f80 b, uint16_t *sw) { \
        __asm__ volatile("fninit; fldcw %[cw]; fldt %[b]; fldt %[a]; " insn "; fnstsw %[sw]; fninit" \
                         : [sw] "=m"(*sw) : [cw] "m"(cw), [a] "m"(a), [b] "m"(b)); }
X87_CMP(x_fcom, "fcom %%st(1)")
X87_CMP(x_fucom, "fucom %%st(1)")

/* stores from ST0 (no pop) into a sentinel-filled slot */
#define X87_ST(name, T, insn) \
    static void name(uint16_t cw, f80 a, T *r, uint16_t *sw) { \
        __asm__ volatile("fninit; fldcw %[cw]; fldt %[a]; " insn " %[r]; fnstsw %[sw]; fninit" \
                         : [r] "+m"(*r), [sw] "=m"(*sw) : [cw] "m"(cw), [a] "m"(a)); }
X87_ST(x_fst32, uint32_t, "fsts")
X87_ST(x_fst64, uint64_t, "fstl")
X87_ST(x_fist16, uint16_t, "fists")
X87_ST(x_fist32, uint32_t, "fistl")
X87_ST(x_fist64, uint64_t, "fld %%st(0); fistpll")
X87_ST(x_fisttp16, uint16_t, "fld %%st(0); fisttps")
X87_ST(x_fisttp32, uint32_t, "fld %%st(0); fisttpl")
X87_ST(x_fisttp64, uint64_t, "fld %%st(0); fisttpll")

#define X87_LD(name, T, insn) \
    static void name(uint16_t cw, T a, f80 *r, uint16_t *sw) { \
        __asm__ volatile("fninit; fldcw %[cw]; " insn " %[a]; fnstsw %[sw]; fnclex; fstpt %[r]; fninit" \
                         : [r] "=m"(*r), [sw] "=m"(*sw) : [cw] "m"(cw), [a] "m"(a)); }
X87_LD(x_fld32, uint32_t, "flds")
X87_LD(x_fld64, uint64_t, "fldl")

/* arithmetic with a memory operand: ST0 = A op m32/m64 */
#define X87_MEM(name, T, insn) \
    static void name(uint16_t cw, f80 a, T b, f80 *r, uint16_t *sw) { \
        __asm__ volatile("fninit; fldcw %[cw]; fldt %[a]; " insn " %[b]; fnstsw %[sw]; fnclex; fstpt %[r]; fninit" \
                         : [r] "=m"(*r), [sw] "=m"(*sw) : [cw] "m"(cw), [a] "m"(a), [b] "m"(b)); }
X87_MEM(x_fadd32, uint32_t, "fadds")
X87_MEM(x_fadd64, uint64_t, "faddl")
X87_MEM(x_fmul32, uint32_t, "fmuls")
X87_MEM(x_fdiv64, uint64_t, "fdivl")

/* SSE scalar: xmm0 = op(xmm0=A, xmm1=B) */
#define SSE_BIN(name, T, mov, insn) \
    static void name(uint32_t m, T a, T b, T *r, uint32_t *mo) { \
        __asm__ volatile("ldmxcsr %[m]; " mov " %[a], %%xmm0; " mov " %[b], %%xmm1; " insn "; " \
                         mov " %%xmm0, %[r]; stmxcsr %[mo]" \
                         : [r] "=m"(*r), [mo] "=m"(*mo) : [m] "m"(m), [a] "m"(a), [b] "m"(b) \
                         : "xmm0", "xmm1"); }
SSE_BIN(s_addss, uint32_t, "movd", "addss %%xmm1, %%xmm0")
SSE_BIN(s_subss, uint32_t, "movd", "subss %%xmm1, %%xmm0")
SSE_BIN(s_mulss, uint32_t, "movd", "mulss %%xmm1, %%xmm0")
SSE_BIN(s_divss, uint32_t, "movd", "divss %%xmm1, %%xmm0")
SSE_BIN(s_minss, uint32_t, "movd", "minss %%xmm1, %%xmm0")
SSE_BIN(s_maxss, uint32_t, "movd", "maxss %%xmm1, %%xmm0")
SSE_BIN(s_sqrtss, uint32_t, "movd", "sqrtss %%xmm0, %%xmm0")
SSE_BIN(s_rcpss, uint32_t, "movd", "rcpss %%xmm0, %%xmm0")
SSE_BIN(s_rsqrtss, uint32_t, "movd", "rsqrtss %%xmm0, %%xmm0")
SSE_BIN(s_addsd, uint64_t, "movq", "addsd %%xmm1, %%xmm0")
SSE_BIN(s_subsd, uint64_t, "movq", "subsd %%xmm1, %%xmm0")
SSE_BIN(s_mulsd, uint64_t, "movq", "mulsd %%xmm1, %%xmm0")
SSE_BIN(s_divsd, uint64_t, "movq", "divsd %%xmm1, %%xmm0")
SSE_BIN(s_minsd, uint64_t, "movq", "minsd %%xmm1, %%xmm0")
SSE_BIN(s_maxsd, uint64_t, "movq", "maxsd %%xmm1, %%xmm0")
SSE_BIN(s_sqrtsd, uint64_t, "movq", "sqrtsd %%xmm0, %%xmm0")
SSE_BIN(s_cvtss2sd, uint64_t, "movq", "cvtss2sd %%xmm0, %%xmm0")
SSE_BIN(s_cvtsd2ss, uint64_t, "movq", "cvtsd2ss %%xmm0, %%xmm0")

#define IMM8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define IMM16(X) IMM8(X) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define IMM32(X) IMM16(X) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23) \
    X(24) X(25) X(26) X(27) X(28) X(29) X(30) X(31)
#define DEF_IMM(i) \
    SSE_BIN(s_cmpss_##i, uint32_t, "movd", "vcmpss $" #i ", %%xmm1, %%xmm0, %%xmm0") \
    SSE_BIN(s_cmpsd_##i, uint64_t, "movq", "vcmpsd $" #i ", %%xmm1, %%xmm0, %%xmm0")
IMM32(DEF_IMM)
#define DEF_RND(i) \
    SSE_BIN(s_roundss_##i, uint32_t, "movd", "roundss $" #i ", %%xmm0, %%xmm0") \
    SSE_BIN(s_roundsd_##i, uint64_t, "movq", "roundsd $" #i ", %%xmm0, %%xmm0")
IMM16(DEF_RND)
typedef void (*sse32_fn)(uint32_t, uint32_t, uint32_t, uint32_t *, uint32_t *);
typedef void (*sse64_fn)(uint32_t, uint64_t, uint64_t, uint64_t *, uint32_t *);
#define REF_CMPSS(i) s_cmpss_##i,
#define REF_CMPSD(i) s_cmpsd_##i,
#define REF_RNDSS(i) s_roundss_##i,
#define REF_RNDSD(i) s_roundsd_##i,
static sse32_fn cmpss_tab[32] = {IMM32(REF_CMPSS)};
static sse64_fn cmpsd_tab[32] = {IMM32(REF_CMPSD)};
static sse32_fn roundss_tab[16] = {IMM16(REF_RNDSS)};
static sse64_fn roundsd_tab[16] = {IMM16(REF_RNDSD)};

/* comparisons into EFLAGS */
#define SSE_COMI(name, T, mov, insn) \
    static void name(uint32_t m, T a, T b, uint64_t *fl, uint32_t *mo) { \
        __asm__ volatile("ldmxcsr %[m]; " mov " %[a], %%xmm0; " mov " %[b], %%xmm1; " insn "; " \
                         "pushfq; popq %[fl]; stmxcsr %[mo]" \
                         : [fl] "=r"(*fl), [mo] "=m"(*mo) : [m] "m"(m), [a] "m"(a), [b] "m"(b) \
                         : "xmm0", "xmm1", "cc"); }
SSE_COMI(s_comiss, uint32_t, "movd", "comiss %%xmm1, %%xmm0")
SSE_COMI(s_ucomiss, uint32_t, "movd", "ucomiss %%xmm1, %%xmm0")
SSE_COMI(s_comisd, uint64_t, "movq", "comisd %%xmm1, %%xmm0")
SSE_COMI(s_ucomisd, uint64_t, "movq", "ucomisd %%xmm1, %%xmm0")

/* float -> int */
#define SSE_CVI(name, T, mov, R, insn) \
    static void name(uint32_t m, T a, R *r, uint32_t *mo) { \
        R t; __asm__ volatile("ldmxcsr %[m]; " mov " %[a], %%xmm0; " insn " %%xmm0, %[t]; stmxcsr %[mo]" \
                              : [t] "=r"(t), [mo] "=m"(*mo) : [m] "m"(m), [a] "m"(a) : "xmm0"); *r = t; }
SSE_CVI(s_cvtss2si32, uint32_t, "movd", uint32_t, "cvtss2si")
SSE_CVI(s_cvtss2si64, uint32_t, "movd", uint64_t, "cvtss2si")
SSE_CVI(s_cvttss2si32, uint32_t, "movd", uint32_t, "cvttss2si")
SSE_CVI(s_cvttss2si64, uint32_t, "movd", uint64_t, "cvttss2si")
SSE_CVI(s_cvtsd2si32, uint64_t, "movq", uint32_t, "cvtsd2si")
SSE_CVI(s_cvtsd2si64, uint64_t, "movq", uint64_t, "cvtsd2si")
SSE_CVI(s_cvttsd2si32, uint64_t, "movq", uint32_t, "cvttsd2si")
SSE_CVI(s_cvttsd2si64, uint64_t, "movq", uint64_t, "cvttsd2si")

/* int -> float */
#define SSE_CIV(name, I, T, mov, insn) \
    static void name(uint32_t m, I a, T *r, uint32_t *mo) { \
        __asm__ volatile("ldmxcsr %[m]; xorps %%xmm0, %%xmm0; " insn " %[a], %%xmm0; " mov " %%xmm0, %[r]; stmxcsr %[mo]" \
                         : [r] "=m"(*r), [mo] "=m"(*mo) : [m] "m"(m), [a] "r"(a) : "xmm0"); }
SSE_CIV(s_cvtsi2ss32, uint32_t, uint32_t, "movd", "cvtsi2ssl")
SSE_CIV(s_cvtsi2ss64, uint64_t, uint32_t, "movd", "cvtsi2ssq")
SSE_CIV(s_cvtsi2sd32, uint32_t, uint64_t, "movq", "cvtsi2sdl")
SSE_CIV(s_cvtsi2sd64, uint64_t, uint64_t, "movq", "cvtsi2sdq")

/* zero all eight physical registers, leave the FPU initialised */
#define CLEAR "fldz; fldz; fldz; fldz; fldz; fldz; fldz; fldz; fninit; "
static const uint32_t mx_reset = 0x1f80;
/* whole-state images: FNSAVE (32-bit, and 16-bit with an operand-size prefix), FXSAVE */
static void x_save(uint16_t cw, f80 a, f80 b, int mode, unsigned char *buf) {
    if (mode == 0)
        __asm__ volatile("fninit; " CLEAR "fldcw %[cw]; fldt %[b]; fldt %[a]; fnsave %[m]; fninit"
                         : [m] "=m"(*(unsigned char (*)[108])buf) : [cw] "m"(cw), [a] "m"(a), [b] "m"(b));
    else if (mode == 1)
        __asm__ volatile("fninit; " CLEAR "fldcw %[cw]; fldt %[b]; fldt %[a]; .byte 0x66; fnsave %[m]; fninit"
                         : [m] "=m"(*(unsigned char (*)[94])buf) : [cw] "m"(cw), [a] "m"(a), [b] "m"(b));
    else
        __asm__ volatile("fninit; " CLEAR "fldcw %[cw]; fldt %[b]; fldt %[a]; ldmxcsr %[mx]; fxsave %[m]; fninit"
                         : [m] "=m"(*(unsigned char (*)[512])buf)
                         : [cw] "m"(cw), [a] "m"(a), [b] "m"(b), [mx] "m"(mx_reset));
}
/* MMX: write MM0 (and MM1 = A+B with paddq), optionally EMMS, then FNSAVE */
static void x_mmx(uint64_t a, uint64_t b, int emms, unsigned char *buf) {
    if (emms)
        __asm__ volatile("fninit; " CLEAR "movq %[a], %%mm0; movq %[b], %%mm3; emms; fnsave %[m]; fninit"
                         : [m] "=m"(*(unsigned char (*)[108])buf) : [a] "m"(a), [b] "m"(b));
    else
        __asm__ volatile("fninit; " CLEAR "fld1; movq %[a], %%mm0; movq %[b], %%mm3; fnsave %[m]; fninit; emms"
                         : [m] "=m"(*(unsigned char (*)[108])buf) : [a] "m"(a), [b] "m"(b));
}
static void x_fbstp(uint16_t cw, f80 a, unsigned char *m, uint16_t *sw) {
    __asm__ volatile("fninit; fldcw %[cw]; fldt %[a]; fbstp %[m]; fnstsw %[sw]; fninit"
                     : [m] "+m"(*(unsigned char (*)[10])m), [sw] "=m"(*sw) : [cw] "m"(cw), [a] "m"(a));
}
static void x_fbld(uint16_t cw, f80 a, f80 *r, uint16_t *sw) {
    __asm__ volatile("fninit; fldcw %[cw]; fbld %[a]; fnstsw %[sw]; fnclex; fstpt %[r]; fninit"
                     : [r] "=m"(*r), [sw] "=m"(*sw) : [cw] "m"(cw), [a] "m"(a));
}
#define X87_CONST(name, insn) \
    static void name(uint16_t cw, f80 *r, uint16_t *sw) { \
        __asm__ volatile("fninit; fldcw %[cw]; " insn "; fnstsw %[sw]; fstpt %[r]; fninit" \
                         : [r] "=m"(*r), [sw] "=m"(*sw) : [cw] "m"(cw)); }
X87_CONST(c_fld1, "fld1") X87_CONST(c_fldl2t, "fldl2t") X87_CONST(c_fldl2e, "fldl2e")
X87_CONST(c_fldpi, "fldpi") X87_CONST(c_fldlg2, "fldlg2") X87_CONST(c_fldln2, "fldln2")
X87_CONST(c_fldz, "fldz")
typedef void (*const_fn)(uint16_t, f80 *, uint16_t *);
static const_fn const_tab[7] = {c_fld1, c_fldl2t, c_fldl2e, c_fldpi, c_fldlg2, c_fldln2, c_fldz};
static void x_fxam(uint16_t cw, f80 a, int empty, uint16_t *sw) {
    if (empty)
        __asm__ volatile("fninit; " CLEAR "fldcw %[cw]; fxam; fnstsw %[sw]; fninit" : [sw] "=m"(*sw) : [cw] "m"(cw));
    else
        __asm__ volatile("fninit; fldcw %[cw]; fldt %[a]; fxam; fnstsw %[sw]; fninit"
                         : [sw] "=m"(*sw) : [cw] "m"(cw), [a] "m"(a));
}
/* stack faults: FADD with an empty ST(1); a ninth push; FST ST(1) from an empty ST(0) */
static void x_under(uint16_t cw, f80 a, f80 b, f80 *r, uint16_t *sw) {
    (void)b;
    __asm__ volatile("fninit; fldcw %[cw]; fldt %[a]; fadd %%st(1), %%st; fnstsw %[sw]; fnclex; fstpt %[r]; fninit"
                     : [r] "=m"(*r), [sw] "=m"(*sw) : [cw] "m"(cw), [a] "m"(a));
}
static void x_over(uint16_t cw, f80 a, f80 b, f80 *r, uint16_t *sw) {
    __asm__ volatile("fninit; fldcw %[cw]; fldt %[a]; fldt %[a]; fldt %[a]; fldt %[a]; fldt %[a]; fldt %[a];"
                     "fldt %[a]; fldt %[a]; fldt %[b]; fnstsw %[sw]; fnclex; fstpt %[r]; fninit"
                     : [r] "=m"(*r), [sw] "=m"(*sw) : [cw] "m"(cw), [a] "m"(a), [b] "m"(b));
}
#define X87_COMI(name, insn) \
    static void name(uint16_t cw, f80 a, f80 b, uint64_t *fl, uint16_t *sw) { \
        __asm__ volatile("fninit; fldcw %[cw]; fldt %[b]; fldt %[a]; " insn "; pushfq; popq %[fl]; fnstsw %[sw]; fninit" \
                         : [fl] "=r"(*fl), [sw] "=m"(*sw) : [cw] "m"(cw), [a] "m"(a), [b] "m"(b) : "cc"); }
X87_COMI(x_fcomi, "fcomi %%st(1), %%st")
X87_COMI(x_fucomi, "fucomi %%st(1), %%st")
#define X87_IMEM(name, T, insn) \
    static void name(uint16_t cw, f80 a, T b, f80 *r, uint16_t *sw) { \
        __asm__ volatile("fninit; fldcw %[cw]; fldt %[a]; " insn " %[b]; fnstsw %[sw]; fnclex; fstpt %[r]; fninit" \
                         : [r] "=m"(*r), [sw] "=m"(*sw) : [cw] "m"(cw), [a] "m"(a), [b] "m"(b)); }
X87_IMEM(x_fiadd16, uint16_t, "fiadds")
X87_IMEM(x_fcom32, uint32_t, "fcoms")
X87_IMEM(x_fcomp64, uint64_t, "fcompl")
X87_BIN(x_ftst, "ftst")
X87_IMEM(x_fimul32, uint32_t, "fimull")
/* 128-bit packed operations: xmm0 = op(xmm0=A, xmm1=B) */
typedef struct { uint64_t lo, hi; } v128;
static v128 p128(const char *s) {
    v128 v; size_t n = strlen(s); char hi[17] = {0};
    v.lo = strtoull(n > 16 ? s + n - 16 : s, 0, 16);
    if (n > 16) { memcpy(hi, s, n - 16 > 16 ? 16 : n - 16); v.hi = strtoull(hi, 0, 16); } else v.hi = 0;
    return v;
}
#define SSE_PK(name, insn) \
    static void name(uint32_t m, v128 a, v128 b, v128 *r, uint32_t *mo) { \
        __asm__ volatile("ldmxcsr %[m]; movdqu %[a], %%xmm0; movdqu %[b], %%xmm1; " insn "; " \
                         "movdqu %%xmm0, %[r]; stmxcsr %[mo]" \
                         : [r] "=m"(*r), [mo] "=m"(*mo) : [m] "m"(m), [a] "m"(a), [b] "m"(b) \
                         : "xmm0", "xmm1"); }
SSE_PK(p_haddps, "haddps %%xmm1, %%xmm0") SSE_PK(p_hsubps, "hsubps %%xmm1, %%xmm0")
SSE_PK(p_haddpd, "haddpd %%xmm1, %%xmm0") SSE_PK(p_addsubps, "addsubps %%xmm1, %%xmm0")
SSE_PK(p_addsubpd, "addsubpd %%xmm1, %%xmm0") SSE_PK(p_addps, "addps %%xmm1, %%xmm0")
SSE_PK(p_dpps_ff, "dpps $0xff, %%xmm1, %%xmm0") SSE_PK(p_dpps_71, "dpps $0x71, %%xmm1, %%xmm0")
SSE_PK(p_dpps_b6, "dpps $0xb6, %%xmm1, %%xmm0") SSE_PK(p_dppd_33, "dppd $0x33, %%xmm1, %%xmm0")
SSE_PK(p_dppd_12, "dppd $0x12, %%xmm1, %%xmm0")
SSE_PK(p_rcpps, "rcpps %%xmm0, %%xmm0") SSE_PK(p_rsqrtps, "rsqrtps %%xmm0, %%xmm0")
static const struct { const char *n; void (*f)(uint32_t, v128, v128, v128 *, uint32_t *); } pk_tab[] = {
    {"haddps", p_haddps}, {"hsubps", p_hsubps}, {"haddpd", p_haddpd}, {"addsubps", p_addsubps},
    {"addsubpd", p_addsubpd}, {"addps", p_addps}, {"dpps_ff", p_dpps_ff}, {"dpps_71", p_dpps_71},
    {"dpps_b6", p_dpps_b6}, {"dppd_33", p_dppd_33}, {"dppd_12", p_dppd_12},
    {"rcpps", p_rcpps}, {"rsqrtps", p_rsqrtps}, {0, 0}};
static void x_fstcw(uint16_t cw, uint16_t *out) {
    __asm__ volatile("fninit; fldcw %[cw]; fnstcw %[o]; fninit" : [o] "=m"(*out) : [cw] "m"(cw));
}
static void hex(const unsigned char *b, int n) { for (int i = 0; i < n; i++) printf("%02x", b[i]); }

int main(void) {
    char line[512], op[64], s1[64], s2[64], s3[64];
    setvbuf(stdout, 0, _IOFBF, 1 << 16);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fpe;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGFPE, &sa, 0);
    while (fgets(line, sizeof line, stdin)) {
        s3[0] = 0;
        if (!strncmp(line, "flush", 5)) { fflush(stdout); continue; }
        int n = sscanf(line, "%63s %63s %63s %63s", op, s1, s2, s3);
        if (n < 3) { printf("?\n"); continue; }
        unsigned long ctl = strtoul(s1, 0, 16);
        uint16_t cw = (uint16_t)ctl, sw = 0;
        uint32_t mx = (uint32_t)ctl, mo = 0;
        f80 r = {0, 0}, r2 = {0, 0};
        const char *o = op;
#define BIN80(nm, fn) if (!strcmp(o, nm)) { fn(cw, p80(s2), p80(s3), &r, &sw); o80(r); printf(" %04x\n", sw); continue; }
#define UN80(nm, fn) if (!strcmp(o, nm)) { fn(cw, p80(s2), p80("0"), &r, &sw); o80(r); printf(" %04x\n", sw); continue; }
        BIN80("fadd", x_fadd) BIN80("fsub", x_fsub) BIN80("fmul", x_fmul) BIN80("fdiv", x_fdiv)
        BIN80("funder", x_under) BIN80("fover", x_over)
        BIN80("fscale", x_fscale) BIN80("fprem", x_fprem) BIN80("fprem1", x_fprem1)
        BIN80("fpatan", x_fpatan) BIN80("fyl2x", x_fyl2x) BIN80("fyl2xp1", x_fyl2xp1)
        UN80("fsin", x_fsin) UN80("fcos", x_fcos) UN80("f2xm1", x_f2xm1)
        if (!strcmp(o, "fptan") || !strcmp(o, "fsincos")) {
            (o[2] == 't' ? x_fptan : x_fsincos)(cw, p80(s2), &r, &r2, &sw);
            o80(r); printf(" "); o80(r2); printf(" %04x\n", sw); continue;
        }
        UN80("fsqrt", x_fsqrt) UN80("frndint", x_frndint) UN80("fabs", x_fabs) UN80("fchs", x_fchs)
        if (!strcmp(o, "fxtract")) { x_fxtract(cw, p80(s2), &r, &r2, &sw); o80(r); printf(" "); o80(r2); printf(" %04x\n", sw); continue; }
        if (!strcmp(o, "fcom")) { x_fcom(cw, p80(s2), p80(s3), &sw); printf("0 %04x\n", sw); continue; }
        if (!strcmp(o, "fucom")) { x_fucom(cw, p80(s2), p80(s3), &sw); printf("0 %04x\n", sw); continue; }
#define ST80(nm, fn, T, fmt) if (!strcmp(o, nm)) { T v = (T)0x5a5a5a5a5a5a5a5aull; fn(cw, p80(s2), &v, &sw); printf(fmt " %04x\n", (unsigned long long)v, sw); continue; }
        ST80("fst32", x_fst32, uint32_t, "%llx") ST80("fst64", x_fst64, uint64_t, "%llx")
        ST80("fist16", x_fist16, uint16_t, "%llx") ST80("fist32", x_fist32, uint32_t, "%llx")
        ST80("fist64", x_fist64, uint64_t, "%llx") ST80("fisttp16", x_fisttp16, uint16_t, "%llx")
        ST80("fisttp32", x_fisttp32, uint32_t, "%llx") ST80("fisttp64", x_fisttp64, uint64_t, "%llx")
        if (!strcmp(o, "fld32")) { x_fld32(cw, (uint32_t)strtoull(s2, 0, 16), &r, &sw); o80(r); printf(" %04x\n", sw); continue; }
        if (!strcmp(o, "fld64")) { x_fld64(cw, strtoull(s2, 0, 16), &r, &sw); o80(r); printf(" %04x\n", sw); continue; }
#define MEM80(nm, fn, T) if (!strcmp(o, nm)) { fn(cw, p80(s2), (T)strtoull(s3, 0, 16), &r, &sw); o80(r); printf(" %04x\n", sw); continue; }
        MEM80("fadd32", x_fadd32, uint32_t) MEM80("fadd64", x_fadd64, uint64_t)
        MEM80("fmul32", x_fmul32, uint32_t) MEM80("fdiv64", x_fdiv64, uint64_t)
        if (!strcmp(o, "fsave") || !strcmp(o, "fsave16") || !strcmp(o, "fxsave")) {
            unsigned char buf[512]; int mode = o[1] == 'x' ? 2 : o[5] ? 1 : 0;
            memset(buf, 0xa5, sizeof buf);
            x_save(cw, p80(s2), p80(s3), mode, buf); hex(buf, mode == 0 ? 108 : mode == 1 ? 94 : 160); printf("\n"); continue;
        }
        if (!strcmp(o, "mmx") || !strcmp(o, "mmxemms")) {
            unsigned char buf[108]; memset(buf, 0xa5, sizeof buf);
            x_mmx(strtoull(s2, 0, 16), strtoull(s3, 0, 16), o[3] == 'e', buf); hex(buf, 108); printf("\n"); continue;
        }
        if (!strcmp(o, "fbstp")) { unsigned char m[10]; memset(m, 0x5a, 10); x_fbstp(cw, p80(s2), m, &sw); hex(m, 10); printf(" %04x\n", sw); continue; }
        if (!strcmp(o, "fbld")) { f80 in = p80(s2); x_fbld(cw, in, &r, &sw); o80(r); printf(" %04x\n", sw); continue; }
        if (!strcmp(o, "fconst")) { const_tab[atoi(s2) % 7](cw, &r, &sw); o80(r); printf(" %04x\n", sw); continue; }
        if (!strcmp(o, "fcomi") || !strcmp(o, "fucomi")) {
            uint64_t fl; (o[1] == 'c' ? x_fcomi : x_fucomi)(cw, p80(s2), p80(s3), &fl, &sw);
            printf("%llx %04x\n", (unsigned long long)(fl & 0x8d5), sw); continue;
        }
        if (!strcmp(o, "fcom32")) { x_fcom32(cw, p80(s2), (uint32_t)strtoul(s3, 0, 16), &r, &sw); printf("0 %04x\n", sw); continue; }
        if (!strcmp(o, "fcomp64")) { x_fcomp64(cw, p80(s2), strtoull(s3, 0, 16), &r, &sw); printf("0 %04x\n", sw); continue; }
        if (!strcmp(o, "ftst")) { x_ftst(cw, p80(s2), p80("0"), &r, &sw); printf("0 %04x\n", sw); continue; }
        if (!strcmp(o, "fiadd16")) { x_fiadd16(cw, p80(s2), (uint16_t)strtoul(s3, 0, 16), &r, &sw); o80(r); printf(" %04x\n", sw); continue; }
        if (!strcmp(o, "fimul32")) { x_fimul32(cw, p80(s2), (uint32_t)strtoul(s3, 0, 16), &r, &sw); o80(r); printf(" %04x\n", sw); continue; }
        if (!strcmp(o, "fstcw")) { uint16_t out; x_fstcw(cw, &out); printf("%04x 0\n", out); continue; }
        if (!strcmp(o, "fxam")) { x_fxam(cw, p80(s2), s3[0] == 'e', &sw); printf("0 %04x\n", sw); continue; }
        if (sigsetjmp(fault_jb, 1)) {
            uint32_t reset = 0x1f80;
            __asm__ volatile("ldmxcsr %0" : : "m"(reset));
            printf("fault %x\n", fault_mxcsr);
            continue;
        }
        int done = 0;
        for (int i = 0; pk_tab[i].n; i++)
            if (!strcmp(o, pk_tab[i].n)) {
                v128 rv; pk_tab[i].f(mx, p128(s2), p128(s3[0] ? s3 : "0"), &rv, &mo);
                printf("%016llx%016llx %x\n", (unsigned long long)rv.hi, (unsigned long long)rv.lo, mo);
                done = 1; break;
            }
        if (done) continue;
        uint64_t a = strtoull(s2, 0, 16), b = s3[0] ? strtoull(s3, 0, 16) : 0;
#define S32(nm, fn) if (!strcmp(o, nm)) { uint32_t v; fn(mx, (uint32_t)a, (uint32_t)b, &v, &mo); printf("%x %x\n", v, mo); continue; }
#define S64(nm, fn) if (!strcmp(o, nm)) { uint64_t v; fn(mx, a, b, &v, &mo); printf("%llx %x\n", (unsigned long long)v, mo); continue; }
        S32("addss", s_addss) S32("subss", s_subss) S32("mulss", s_mulss) S32("divss", s_divss)
        S32("minss", s_minss) S32("maxss", s_maxss) S32("sqrtss", s_sqrtss)
        S32("rcpss", s_rcpss) S32("rsqrtss", s_rsqrtss)
        S64("addsd", s_addsd) S64("subsd", s_subsd) S64("mulsd", s_mulsd) S64("divsd", s_divsd)
        S64("minsd", s_minsd) S64("maxsd", s_maxsd) S64("sqrtsd", s_sqrtsd)
        S64("cvtss2sd", s_cvtss2sd)
        if (!strcmp(o, "cvtsd2ss")) { uint64_t v; s_cvtsd2ss(mx, a, b, &v, &mo); printf("%llx %x\n", (unsigned long long)(v & 0xffffffffu), mo); continue; }
        if (!strncmp(o, "cmpss", 5)) { int i = atoi(o + 5) & 31; uint32_t v; cmpss_tab[i](mx, (uint32_t)a, (uint32_t)b, &v, &mo); printf("%x %x\n", v, mo); continue; }
        if (!strncmp(o, "cmpsd", 5)) { int i = atoi(o + 5) & 31; uint64_t v; cmpsd_tab[i](mx, a, b, &v, &mo); printf("%llx %x\n", (unsigned long long)v, mo); continue; }
        if (!strncmp(o, "roundss", 7)) { int i = atoi(o + 7) & 15; uint32_t v; roundss_tab[i](mx, (uint32_t)a, 0, &v, &mo); printf("%x %x\n", v, mo); continue; }
        if (!strncmp(o, "roundsd", 7)) { int i = atoi(o + 7) & 15; uint64_t v; roundsd_tab[i](mx, a, 0, &v, &mo); printf("%llx %x\n", (unsigned long long)v, mo); continue; }
#define COMI(nm, fn, T) if (!strcmp(o, nm)) { uint64_t fl; fn(mx, (T)a, (T)b, &fl, &mo); printf("%llx %x\n", (unsigned long long)(fl & 0x8d5), mo); continue; }
        COMI("comiss", s_comiss, uint32_t) COMI("ucomiss", s_ucomiss, uint32_t)
        COMI("comisd", s_comisd, uint64_t) COMI("ucomisd", s_ucomisd, uint64_t)
#define CVI(nm, fn, T, R) if (!strcmp(o, nm)) { R v; fn(mx, (T)a, &v, &mo); printf("%llx %x\n", (unsigned long long)v, mo); continue; }
        CVI("cvtss2si32", s_cvtss2si32, uint32_t, uint32_t) CVI("cvtss2si64", s_cvtss2si64, uint32_t, uint64_t)
        CVI("cvttss2si32", s_cvttss2si32, uint32_t, uint32_t) CVI("cvttss2si64", s_cvttss2si64, uint32_t, uint64_t)
        CVI("cvtsd2si32", s_cvtsd2si32, uint64_t, uint32_t) CVI("cvtsd2si64", s_cvtsd2si64, uint64_t, uint64_t)
        CVI("cvttsd2si32", s_cvttsd2si32, uint64_t, uint32_t) CVI("cvttsd2si64", s_cvttsd2si64, uint64_t, uint64_t)
#define CIV(nm, fn, I, T) if (!strcmp(o, nm)) { T v; fn(mx, (I)a, &v, &mo); printf("%llx %x\n", (unsigned long long)v, mo); continue; }
        CIV("cvtsi2ss32", s_cvtsi2ss32, uint32_t, uint32_t) CIV("cvtsi2ss64", s_cvtsi2ss64, uint64_t, uint32_t)
        CIV("cvtsi2sd32", s_cvtsi2sd32, uint32_t, uint64_t) CIV("cvtsi2sd64", s_cvtsi2sd64, uint64_t, uint64_t)
        printf("?\n");
    }
    return 0;
}
