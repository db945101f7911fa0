"""Template parameters the demangler resolves where libiberty prints them, not where it
reads them: a ``T_`` read inside a local name's function and reused through a substitution
outside it, a closure's ``auto:N`` reused outside the closure, a reference to a template
parameter that keeps the scope it first printed in, and a default argument's scope.  Each
name comes from g++ here (or from a system library that carries it) and is checked against
``c++filt -i`` -- objdump's own flags -- and the object's ``-dC`` listing against objdump."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from support.disasm_cli import objdump, run_cli
from support.oracles import require_file
from x86vm.disasm.demangle import demangle

pytestmark = pytest.mark.oracle("objdump-2.40")

SOURCE = r"""
template <class T> struct Update { T item; };
template <class It, class Cmp> __attribute__((noinline)) int insert(It first, Cmp cmp) {
  return cmp(*first, *first);
}
template <class T> int legalize(Update<T> *updates) {   // insert's T_ is legalize's S_
  return insert(updates, [](const Update<T> &a, const Update<T> &b) { return a.item < b.item; });
}
template int legalize<int *>(Update<int *> *);

template <class F> __attribute__((noinline)) int call(F &&f) { return f(1); }
struct Widget {                                       // {default arg#1}::{lambda(int)#1}
  template <class F = int (*)(int)> int run(F f = [](int x) { return x + 1; }) { return call(f); }
};
int use_default() { return Widget().run(); }

template <class F> __attribute__((noinline)) int apply(F f, int *p) { return f(*p); }
template <class T> int outer(T v) {                   // {lambda(auto:1&)#1}, S_ outside it
  return apply([](auto &x) { return (int)sizeof(x); }, &v);
}
template int outer<int>(int);

template <class T, class U> __attribute__((noinline)) int into(T &&t, U &&u) { return t() + u(); }
template <class F> __attribute__((noinline)) int back(F &&f) { return into(f, [] { return 2; }); }
int use_back() { return back([] { return 1; }); }   // OT_ reused: back's scope kept
"""

SYSTEM_NAMES = {   # (library, a mangled name it defines): the bulk run's differing names
    "/usr/lib/x86_64-linux-gnu/libLLVM-15.so":
        "_ZSt25__unguarded_linear_insertIPN4llvm3cfg6UpdateIPNS0_10BasicBlockEEEN9__gnu_cxx5"
        "__ops14_Val_comp_iterIZNS1_15LegalizeUpdatesIS4_EEvNS0_8ArrayRefINS2_IT_EEEERNS0_15"
        "SmallVectorImplISD_EEbbEUlRKS5_SJ_E_EEEvSC_T0_",
    "/usr/lib/x86_64-linux-gnu/libclang-cpp.so.14":
        "_ZTIZNK5clang15LocationContext9printJsonERN4llvm11raw_ostreamEPKcjbSt8functionIFvPKS0"
        "_EEEd_UlS8_E_",
}


EDGE_NAMES = [
    # reference temporaries and discriminators as libiberty reads them (many are refused)
    "_ZGR1x_", "_ZGR1x0_", "_ZGR1x0", "_ZGRZ1fvE1x_", "_ZGRZ1fvE1x0_", "_ZGRZ1fvE1x_0",
    "_ZGRZ1fvE1x_1_", "_ZGRN1a1xE0_", "_ZGRN1a1xE_", "_ZZ1fvE1x__12_", "_ZZ1fvE1x__1",
    "_ZZ1fvE1x__12", "_ZZ1fvE1x_n3",
    # function types' noexcept and transaction_safe, with cv-qualifiers
    "_Z1fPDoFvvE", "_Z1fPDxFvvE", "_Z1fPDxDoFvvE", "_Z1fM1AKDoFvvE", "_Z1fM1AKFvvE",
    "_Z1fRDoFviE", "_Z1fM1AVKFvvE",
    # array dimensions and sizeof... from template arguments, pack expansions
    "_Z1fIJidEEvPAsZT__i", "_Z1fIiEvRAT__c", "_Z1fIJEEvDpT_", "_Z1fIJicEEvN1XIXsZT_EEE",
    "_Z1gIJiEEvDTcl1fspfp_EE",
    # from node: noexcept function pointers, an enum pack with an expanded index pack
    "_ZSt6all_ofIPKcPDoFbcEEbT_S4_T0_",
    "_ZN2v88internal7Factory24NewStringFromStaticCharsILm51EEENS0_6HandleINS0_6StringEEERAT"
    "__KcNS0_14AllocationTypeE",
    "_ZN2v88internal8compiler12_GLOBAL__N_116UpdateInLivenessILNS0_11interpreter8BytecodeE90E"
    "LNS4_19ImplicitRegisterUseE0EJLNS4_11OperandTypeE10ELS7_10ELS7_15EEJLm0ELm1ELm2EEEEvPNS1_"
    "21BytecodeLivenessStateERKNS4_21BytecodeArrayIteratorESt16integer_sequenceImJXspT2_EEE",
    # a pack expansion whose reference keeps a scope where the pack is shorter: refused
    "_ZN2v88internal11StringShape33DispatchToSpecificTypeWithoutCastIZNS1_22DispatchToSpecif"
    "icTypeIZNKS0_6String7GetImplEiNS0_16PtrComprCageBaseERKNS0_31SharedStringAccessGuardIfN"
    "eededEE19StringGetDispatchertJRiRS5_S8_EEET0_S4_DpOT1_E17CastingDispatchertJRS4_SA_SB_S8"
    "_EEESC_SF_",
]


def cxxfilt(names: list[str]) -> list[str]:
    if shutil.which("c++filt") is None:
        pytest.skip("needs c++filt")
    proc = subprocess.run(["c++filt", "-i"], input="\n".join(names) + "\n",
                          capture_output=True, text=True, check=True)
    return proc.stdout.splitlines()


@pytest.fixture(scope="module")
def cxx_object(tmp_path_factory) -> str:
    if shutil.which("g++") is None or shutil.which("objdump") is None:
        pytest.skip("needs g++ and objdump")
    work = tmp_path_factory.mktemp("demangle_scope")
    (work / "scope.cc").write_text(SOURCE)
    subprocess.run(["g++", "-O2", "-c", str(work / "scope.cc"), "-o", str(work / "scope.o")],
                   check=True)
    return str(work / "scope.o")


def defined_names(path: str) -> list[str]:
    proc = subprocess.run(["nm", "--defined-only", path], capture_output=True, text=True,
                          check=True)
    return sorted({line.split()[-1] for line in proc.stdout.splitlines()
                   if line.split()[-1].startswith("_Z")})


def test_names_of_the_reproducer_demangle_as_cxxfilt(cxx_object):
    names = defined_names(cxx_object)
    wanted = cxxfilt(names)
    # (each construct is there: the test cannot pass on names that lack them)
    assert any("{default arg#1}::{lambda(int)#1}" in w for w in wanted)
    assert any("{lambda(auto:1&)#1}>(" in w for w in wanted)
    assert len(names) >= 6
    assert [demangle(name) for name in names] == wanted


def test_listing_of_the_reproducer_matches_objdump(capsys, cxx_object):
    args = ["-dCr", "-M", "intel", "--no-show-raw-insn", cxx_object]
    theirs = objdump(args)
    code, out, err = run_cli(args, capsys)
    assert (code, err) == (0, "")
    assert "{default arg#1}" in out
    assert out == theirs.stdout


@pytest.mark.parametrize("library", sorted(SYSTEM_NAMES))
def test_system_library_names_demangle_as_cxxfilt(library):
    require_file(library)
    name = SYSTEM_NAMES[library]
    proc = subprocess.run(["nm", "-D", "--defined-only", library], capture_output=True,
                          text=True, check=True)
    assert any(line.split()[-1].split("@")[0] == name for line in proc.stdout.splitlines())
    assert [demangle(name)] == cxxfilt([name])


def test_edge_names_demangle_as_cxxfilt():
    """Mangled names as data, c++filt the oracle: a refused name is None here (objdump then
    prints it mangled)."""
    wanted = cxxfilt(EDGE_NAMES)
    got = [demangle(name) or name for name in EDGE_NAMES]
    assert [(n, g) for n, g, w in zip(EDGE_NAMES, got, wanted, strict=True) if g != w] == []
    assert sum(w == n for n, w in zip(EDGE_NAMES, wanted, strict=True)) >= 8  # refusals too
