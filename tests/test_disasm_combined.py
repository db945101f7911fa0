"""The command lines people type, against objdump 2.40 run here: combined short options
(``-CdlSw``), several files at once (an executable, objects, a shared library, a system
binary), ``-dCr -M intel --no-show-raw-insn`` and ``-dl`` (the bulk run's option sets,
scripts/disasm-bulk) and a compiler-explorer style ``-d -l --insn-width=16 -C -M intel -r``,
on C++ and C built here with -g -O2 -- byte for byte, with the same exit status."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from support.oracles import require_file
from x86vm.cli import main

pytestmark = pytest.mark.oracle("objdump-2.40")

CXX = r"""
#include <vector>
#include <string>
#include <cstdio>
namespace ns { template <class T> struct Box { T v; T get() const { return v * 2; } }; }
int counter;
__attribute__((noinline)) long total(const std::vector<int>& v) {
    long s = 0; for (int x : v) s += x; return s; }
int main(int argc, char** argv) {
    std::vector<int> v(argc, 3); ns::Box<double> b{1.5};
    std::string s(argv[0]); counter += s.size();
    printf("%ld %f %d\n", total(v), b.get(), counter);
}
"""
C = "static int sq(int x) { return x * x; }\n" \
    "int api(int n) { int s = 0; for (int i = 0; i < n; i++) s += sq(i) ^ n; return s; }\n"

OPTIONS = [["-CdlSw"], ["-M", "intel", "-CdlSw", "--no-show-raw-insn"],
           ["-dCr", "-M", "intel", "--no-show-raw-insn"], ["-dl"], ["-dCrR", "-M", "intel"],
           ["-d", "-l", "--insn-width=16", "-C", "-M", "intel", "-r"]]


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, str]:
    if not (shutil.which("g++") and shutil.which("gcc") and shutil.which("objdump")):
        pytest.skip("needs g++, gcc and objdump")
    require_file("/usr/bin/true")
    work = tmp_path_factory.mktemp("combined")
    (work / "a.cc").write_text(CXX)
    (work / "b.c").write_text(C)
    commands = {"a.out": ["g++", "-g", "-O2", "a.cc", "-o", "a.out"],
                "a.o": ["g++", "-g", "-O2", "-c", "a.cc", "-o", "a.o"],
                "b.o": ["gcc", "-g", "-O2", "-c", "b.c", "-o", "b.o"],
                "libb.so": ["gcc", "-gdwarf-4", "-O2", "-fPIC", "-shared", "b.c", "-o",
                            "libb.so"]}
    for command in commands.values():
        subprocess.run(command, cwd=work, check=True, capture_output=True)
    return {name: str(work / name) for name in commands}


@pytest.mark.parametrize("options", OPTIONS, ids=" ".join)
@pytest.mark.parametrize("files", [["a.out"], ["a.o", "b.o", "libb.so"],
                                   ["b.o", "/usr/bin/true", "a.o"]], ids=" ".join)
def test_command_line_matches_objdump(capsys, builds, options, files):
    paths = [builds.get(name, name) for name in files]
    want = subprocess.run(["objdump", *options, *paths], capture_output=True, text=True,
                          errors="surrogateescape")
    try:
        code = main(["disasm", *options, *paths])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    # (x86vm's own errors say "error:" where objdump names only itself)
    assert (code, err.replace("x86vm: error: ", "x86vm: ")) == (
        want.returncode, want.stderr.replace("objdump: ", "x86vm: "))
    assert out == want.stdout


#: names the bulk run (scripts/disasm-bulk) and system libraries' symbols showed wrong or
#: mangled: ``sr <type> <name>`` and ``sr <levels> E <name>`` in a template argument
#: (libstdc++'s __fill_a1 named by -l from DWARF; llvm::yaml::yamlize), CV-qualifiers in
#: libiberty's order (const volatile restrict), a const template argument made const again,
#: a qualified array through a reference or pointer (``char const (&) [3]``, also from a pack)
NAMES = [
    "_ZSt9__fill_a1IPiiEN9__gnu_cxx11__enable_ifIXsrSt11__is_scalarIT0_E7__valueEvE6"
    "__typeET_S8_RKS4_",
    "_ZN4llvm4yaml7yamlizeIlEENSt9enable_ifIXsr16has_ScalarTraitsIT_EE5valueEvE4typeERNS0_"
    "2IOERS3_bRNS0_12EmptyContextE",
    "_Z1fPrVKc", "_Z1fPVKc", "_ZNVK1A1fEv", "_Z1fIKcEvPKT_", "_Z1fIKcEvRKT_",
    "_Z1fIJA3_cEEvDpRKT_", "_Z1fIA3_cEvRKT_", "_Z1fIA3_cEvPKT_",
    "_ZN2v88internal15SearchStringRawIKhKtEElPNS0_7IsolateEPKT_iPKT0_ii",
    # an empty pack before a printed argument keeps its ", "; multi-dimensional arrays; a
    # function returning a function pointer (std::_Bind<void (*(std::_Placeholder<1>))...>)
    "_ZNSt17_Function_handlerIFvvEZN2v84base8CallOnceIJEvEEvPSt6atomicIhENS2_16FunctionWith"
    "ArgsIJDpT_EE4typeES9_EUlvE_E9_M_invokeERKSt9_Any_data",
    "_ZNK6icu_788Calendar13resolveFieldsEPA12_A8_Ki",
    "_Z1fISt5_BindIFPFvcESt12_PlaceholderILi1EEEEEvT_",
    # the address of a function as a template argument: the plain name, or a const or
    # template function whole in parentheses; a construction vtable
    "_ZN12v8_inspector9V8Console4callIXadL_ZNS0_10ProfileEndERKN2v85debug20ConsoleCall"
    "ArgumentsERKNS3_14ConsoleContextEEEEEvRKNS2_20FunctionCallbackInfoINS2_5ValueEEE",
    "_ZN4node10BaseObject16InternalFieldSetILi3EXadL_ZNK2v85Value10IsFunctionEvEEEEvNS2_5"
    "LocalINS2_6StringEEENS4_IS3_EERKNS2_20PropertyCallbackInfoIvEE",
    "_ZN4node10StreamBase8JSMethodIXadL_ZNS0_11WriteStringILNS_8encodingE0EEEiRKN2v820FunctionCallbackInfoINS4_5ValueEEEEEEEvS9_",
    "_ZTCN2v84base18CheckMessageStreamE0_NSt7__cxx1119basic_ostringstreamIcSt11char_traits"
    "IcESaIcEEE",
    # GCC's sr <template-id> <name> (its type a substitution candidate) beside clang's
    # sr <levels> E <name> (lto-dump's poly_int, llvm::checkedAdd)
    "_Z10multiple_pILj1ElilEN10if_nonpolyIT1_bXsr15poly_int_traitsIS1_E7is_polyEE4typeERK"
    "12poly_int_podIXT_ET0_ES1_PS6_IXT_ET2_E",
    "_ZN4llvm10checkedAddIiEENSt9enable_ifIXsr3std9is_signedIT_EE5valueENS_8OptionalIS2_EE"
    "E4typeES2_S2_",
    # an encoding inside a template argument names its own template parameters: a local
    # name (std::call_once's lambda, heaptrack_print) and an L_Z literal (v8's liftoff);
    # the address of a free function is printed whole in parentheses (gcc's hash_table)
    "_ZZNSt9once_flag18_Prepare_executionC4IZSt9call_onceIMSt6threadFvvEJPS3_EEvRS_OT_DpOT0"
    "_EUlvE_EERS8_ENUlvE_4_FUNEv",
    "_ZN2v88internal4wasm7liftoff16EmitFloatSetCondIXadL_ZNS0_24SharedMacroAssemblerBase7"
    "UcomisdINS0_11XMMRegisterES6_JEEEvT_T0_DpT1_EEEEvPNS1_16LiftoffAssemblerENS0_9Condition"
    "ENS0_8RegisterES6_S6_",
    "_ZN10hash_tableI13cselib_hasherLb0E11xcallocatorE8traverseIP8_IO_FILEXadL_Z15dump_"
    "cselib_valPP10cselib_valS5_EEEEvT_",
    # srN <unresolved-type> <template-args> levels E <name>, its parts substitution
    # candidates (gcc's wide-int)
    "_ZN2wi11bit_and_notI16generic_wide_intI16wide_int_storageES3_EENS_13binary_traitsIT_T0"
    "_XsrNS_10int_traitsIS5_EE14precision_typeEXsrNS7_IS6_EE14precision_typeEE11result_"
    "typeERKS5_RKS6_",
    # a constructor/destructor of an unnamed type takes its enclosing class's name (icu)
    "_ZN6icu_726number4impl10MicroPropsUt_D1Ev",
    # operators in a template argument: each operand in parentheses unless a name (v8)
    "_ZN2v84base17PrintCheckOperandIPKaEENSt9enable_ifIXaaaantsrSt11is_functionINSt14"
    "remove_pointerIT_E4typeEE5valuentsrSt7is_enumIS7_E5valuesrNS0_19has_output_opera"
    "torIS7_NS0_18CheckMessageStreamEvEE5valueENSt7__cxx1112basic_stringIcSt11char_tr"
    "aitsIcESaIcEEEE4typeES7_",
    "_Z1fIiEN9enable_ifIXntntsr1AIT_E1vEvE4typeEv",
    # a closure's number is decimal (the 12th lambda is E10_, not base 36)
    "_ZZN12v8_inspector8protocol7Runtime12_GLOBAL__N_114evaluateParams23deserializer_"
    "descriptorEvENUlPN8v8_crdtp17DeserializerStateEPvE10_4_FUNES6_S7_",
    # a const member function type: only the qualified type is a substitution candidate
    "_ZNK6icu_7225RelativeDateTimeFormatter8doFormatIMS0_KFv14UDateDirection17UDateAbsolute"
    "UnitRNS_29FormattedRelativeDateTimeDataER10UErrorCodeEJS2_S3_EEERNS_13UnicodeStringET_"
    "SB_S7_DpT0_",
    # decltype of a call with function parameters (gcc's splay tree, lto-dump)
    "_ZN19rootless_splay_treeI40default_splay_tree_accessors_with_parentIPN7rtl_ssa9insn_"
    "info10order_nodeEEE16splay_and_searchIiZNS6_21compare_nodes_one_wayES4_S4_EUlS4_jE_EE"
    "DTclfp1_fp_Li0EEES4_T_T0_",
    # a generic lambda's parameters are auto:N; substituted outside, the template's (node)
    "_ZSt13__adjust_heapIPSt4pairISt17basic_string_viewIcSt11char_traitsIcEES4_ElS5_N9__gnu"
    "_cxx5__ops15_Iter_comp_iterIZN4nodeL11SetVersionsEPN2v87IsolateENSB_5LocalINSB_6Object"
    "EEEEUlRT_RT0_E_EEEvSH_SJ_SJ_T1_T2_",
]


@pytest.mark.parametrize("name", NAMES)
def test_names_are_demangled_as_cxxfilt_does(name):
    from x86vm.disasm.demangle import demangle

    if shutil.which("c++filt") is None:
        pytest.skip("needs c++filt")
    want = subprocess.run(["c++filt"], input=name, capture_output=True, text=True).stdout
    assert demangle(name) == want.strip()


SAME_ADDRESS = """\
\t.text
\t.type\tzero_sized,@function
\t.type\tsized,@function
zero_sized:
sized:
\tnop
\tnop
\tud2
\t.size\tsized, 4
\t.size\tzero_sized, 0
\t.type\tafter,@function
after:
\tret
\t.size\tafter, 1
"""


def test_line_numbers_name_the_larger_of_two_functions_at_one_address(capsys, tmp_path):
    """-l without DWARF (BFD 2.40's _bfd_elf_find_function): of two function symbols at
    one address the larger is named (node's .cold parts: a zero-sized alias first)."""
    if shutil.which("as") is None or shutil.which("objdump") is None:
        pytest.skip("needs as and objdump")
    (tmp_path / "t.s").write_text(SAME_ADDRESS)
    subprocess.run(["as", str(tmp_path / "t.s"), "-o", str(tmp_path / "t.o")], check=True)
    want = subprocess.run(["objdump", "-dl", str(tmp_path / "t.o")], capture_output=True,
                          text=True).stdout
    assert "sized():" in want
    main(["disasm", "-dl", str(tmp_path / "t.o")])
    assert capsys.readouterr().out == want
