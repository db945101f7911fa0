"""C++ names (Itanium C++ ABI section 5.1, "Mangling") demangled as objdump -C prints them.

objdump calls libiberty's ``cplus_demangle(name, DMGL_PARAMS | DMGL_ANY)`` on the name without
its ``@VERSION``/``@plt`` suffix (``bfd_demangle``); this module gives the same text for the
constructs g++ emits (nested and local names, templates, substitutions, operators, ctors and
dtors, CV and ref qualifiers, pointers to functions, members and arrays, literals, lambdas,
ABI tags, special names, clone suffixes) and ``None`` for what it does not know, which the
caller prints mangled -- exactly what objdump does with a name libiberty cannot read.
"""

from __future__ import annotations

__all__ = ["demangle", "demangle_symbol"]

BUILTINS = {
    "v": "void", "w": "wchar_t", "b": "bool", "c": "char", "a": "signed char",
    "h": "unsigned char", "s": "short", "t": "unsigned short", "i": "int",
    "j": "unsigned int", "l": "long", "m": "unsigned long", "x": "long long",
    "y": "unsigned long long", "n": "__int128", "o": "unsigned __int128", "f": "float",
    "d": "double", "e": "long double", "g": "__float128", "z": "...",
}
D_BUILTINS = {
    "d": "decimal64", "e": "decimal128", "f": "decimal32", "h": "half", "i": "char32_t",
    "s": "char16_t", "u": "char8_t", "a": "auto", "c": "decltype(auto)",
    "n": "decltype(nullptr)",
}
OPERATORS = {
    "nw": "new", "na": "new[]", "dl": "delete", "da": "delete[]", "ps": "+", "ng": "-",
    "ad": "&", "de": "*", "co": "~", "pl": "+", "mi": "-", "ml": "*", "dv": "/", "rm": "%",
    "an": "&", "or": "|", "eo": "^", "aS": "=", "pL": "+=", "mI": "-=", "mL": "*=",
    "dV": "/=", "rM": "%=", "aN": "&=", "oR": "|=", "eO": "^=", "ls": "<<", "rs": ">>",
    "lS": "<<=", "rS": ">>=", "eq": "==", "ne": "!=", "lt": "<", "gt": ">", "le": "<=",
    "ge": ">=", "ss": "<=>", "nt": "!", "aa": "&&", "oo": "||", "pp": "++", "mm": "--",
    "cm": ",", "pm": "->*", "pt": "->", "cl": "()", "ix": "[]", "qu": "?", "st": "sizeof ",
    "sz": "sizeof ", "aw": "co_await",
}
STD_SUBS = {  # (simple text, full text for a ctor/dtor, the last name for a ctor/dtor)
    "t": ("std", "std", ""),
    "a": ("std::allocator", "std::allocator", "allocator"),
    "b": ("std::basic_string", "std::basic_string", "basic_string"),
    "s": ("std::string",
          "std::basic_string<char, std::char_traits<char>, std::allocator<char> >",
          "basic_string"),
    "i": ("std::istream", "std::basic_istream<char, std::char_traits<char> >",
          "basic_istream"),
    "o": ("std::ostream", "std::basic_ostream<char, std::char_traits<char> >",
          "basic_ostream"),
    "d": ("std::iostream", "std::basic_iostream<char, std::char_traits<char> >",
          "basic_iostream"),
}
LITERAL_SUFFIX = {"i": "", "j": "u", "l": "l", "m": "ul", "x": "ll", "y": "ull"}
SPECIAL = {"V": "vtable for ", "T": "VTT for ", "I": "typeinfo for ",
           "S": "typeinfo name for ", "H": "TLS init function for ",
           "W": "TLS wrapper function for "}


class Unsupported(Exception):
    """A construct this demangler does not read (libiberty may): the name stays mangled."""


# -- nodes: each prints a left part and a right part (declarators wrap around a name) ------

class Node:
    def left(self) -> str:
        raise NotImplementedError

    def right(self) -> str:
        return ""

    def __str__(self) -> str:
        return self.left() + self.right()

    def base_name(self) -> str:  # the name a ctor/dtor takes
        return str(self)

    @property
    def wraps_declarator(self) -> bool:  # function and array types: (*) goes inside
        return False


class Text(Node):
    def __init__(self, text: str, base: str | None = None, ctor: bool = False) -> None:
        self.text, self.base, self.ctor = text, base, ctor

    def left(self) -> str:
        return self.text

    def base_name(self) -> str:
        return self.base if self.base is not None else self.text


class _LaterParam(Node):
    """A template parameter resolved when printed, against the template arguments the
    parse ended with (a generic lambda's ``auto:N`` substituted outside the lambda)."""

    def __init__(self, parser, index: int) -> None:
        self.parser, self.index = parser, index

    def _target(self) -> Node:
        params = self.parser.params
        if self.index >= len(params):
            raise Unsupported("template parameter out of range")
        return params[self.index]

    def left(self) -> str:
        return self._target().left()

    def right(self) -> str:
        return self._target().right()

    @property
    def wraps_declarator(self) -> bool:
        return self._target().wraps_declarator


_TEMPLATES: list[list[Node]] = []
"""The template argument lists in force while printing, innermost last: libiberty's
``d_print_info.templates``.  A function template's arguments are pushed while its return
and parameter types print (not its name), and a template parameter prints its argument with
the innermost list taken off (cp-demangle.c, d_print_comp: TYPED_NAME, TEMPLATE_PARAM)."""
_SAVED_SCOPES: dict[int, tuple[Node, list[list[Node]]]] = {}
"""The templates in force when a reference to a template parameter first printed, by the
parameter (emptied at each demangle; the node is kept so its id stays its own)."""
_LAMBDA_PARAMS: list[bool] = []
"""Not empty while a closure's parameters print: a template parameter there is ``auto:N``
(libiberty's is_lambda_arg), even one reused from outside through a substitution."""
_PACK_INDEX: list[int] = []
"""The element of the pack a pack expansion is printing, innermost last."""
_PRINTING: list[Node] = []
"""The references printing with a saved scope (one is not restored beneath itself)."""


class _ContextParam(Node):
    """A template parameter ``T_`` in a type, resolved where it is printed, as libiberty
    does: against the argument list it was read with while that list is the innermost one
    in force, else against the innermost one -- a ``T_`` read inside a local name's
    function and reused through a substitution outside it names the outer template's
    argument (``f<A*>(...)::{lambda}`` ... ``S_`` for ``T_``: ``A*``)."""

    def __init__(self, index: int, target: Node, owner: list[Node] | None) -> None:
        self.index, self.target, self.owner = index, target, owner

    def resolved(self, element: bool = True) -> Node:
        """The argument; inside a pack expansion, of a pack, the element being printed
        (libiberty's pack_index -- one past the pack's end fails the whole name)."""
        if _LAMBDA_PARAMS:
            return Text(f"auto:{self.index + 1}")
        target = self.target
        if _TEMPLATES and _TEMPLATES[-1] is not self.owner:
            args = _TEMPLATES[-1]
            if self.index >= len(args):
                raise Unsupported("template parameter out of range")
            target = args[self.index]
        if element and _PACK_INDEX and isinstance(target, Pack):
            if _PACK_INDEX[-1] >= len(target.items):
                raise Unsupported("pack index out of range")
            return target.items[_PACK_INDEX[-1]]
        return target

    def _printed(self, side: str) -> str:
        target = self.resolved()
        held = _TEMPLATES.pop() if _TEMPLATES else None
        try:
            return getattr(target, side)()
        finally:
            if held is not None:
                _TEMPLATES.append(held)

    def left(self) -> str:
        return self._printed("left")

    def right(self) -> str:
        return self._printed("right")

    def base_name(self) -> str:
        return self.resolved().base_name()

    @property
    def wraps_declarator(self) -> bool:
        return self.resolved().wraps_declarator


def _through(node: Node) -> Node:
    """A template parameter's argument or a pack's current element for ``node``."""
    while True:
        if isinstance(node, _ContextParam):
            node = node.resolved()
        elif isinstance(node, Pack) and node.current is not None:
            node = node.current
        else:
            return node


class Qualified(Node):
    def __init__(self, scope: Node, name: Node) -> None:
        self.scope, self.name = scope, name

    def left(self) -> str:
        return f"{self.scope}::{self.name}"

    def base_name(self) -> str:
        return self.name.base_name()


class Template(Node):
    def __init__(self, name: Node, args: list[Node]) -> None:
        self.name, self.args = name, args

    def left(self) -> str:
        name = str(self.name)
        args, last = _join(self.args)
        text = name + (" <" if name.endswith("<") else "<") + args
        if not args:
            last = text[-1]
        return text + (" >" if last == ">" else ">")

    def base_name(self) -> str:
        return self.name.base_name()


class Pack(Node):
    """A template argument pack; inside a pack expansion it stands for one element."""

    def __init__(self, items: list[Node]) -> None:
        self.items = items
        self.current: Node | None = None

    def left(self) -> str:
        if self.current is not None:
            return self.current.left()
        return _join(self.items)[0]

    def right(self) -> str:
        return self.current.right() if self.current is not None else ""

    def resolved(self) -> Node:
        return self.current if self.current is not None else self


class PackExpansion(Node):
    """``Dp <pattern>``: the pattern once per element of the pack it names."""

    def __init__(self, pattern: Node, pack: Pack | None) -> None:
        self.pattern, self.pack = pattern, pack

    def texts(self) -> list[str]:
        pack = _find_pack(self.pattern, printing=True) or self.pack
        if pack is None:            # (only function parameter packs: the pattern and ...)
            return [_operand(self.pattern) + "..."]
        texts = []
        for n, item in enumerate(pack.items):
            pack.current = item
            _PACK_INDEX.append(n)
            try:
                texts.append(str(self.pattern))
            finally:
                pack.current = None
                _PACK_INDEX.pop()
        return texts

    def left(self) -> str:
        return ", ".join(self.texts())


class Qualifiers(Node):
    """``inner`` with CV-qualifiers: after a type (``char const``), on an array's element
    (``char const (&) [3]``), after a function type's parameters; a qualifier the type
    already ends with (a template argument ``char const`` made const again) is not
    repeated, as libiberty prints it."""

    def __init__(self, inner: Node, quals: str) -> None:
        self.inner, self.quals = inner, quals

    def _target(self) -> Node:
        return _through(self.inner)

    def left(self) -> str:
        inner = self._target()
        if isinstance(inner, ArrayType):
            return _qualified(inner.element.left(), self.quals)
        if inner.wraps_declarator:
            return inner.left()
        return _qualified(inner.left(), self.quals)

    def right(self) -> str:
        inner = self._target()
        if inner.wraps_declarator and not isinstance(inner, ArrayType):
            return inner.right() + self.quals
        return inner.right()

    @property
    def wraps_declarator(self) -> bool:
        return self._target().wraps_declarator


def _qualified(text: str, quals: str) -> str:
    """``text`` followed by the qualifiers it does not already end with."""
    words = text.split(" ")
    tail = set()
    while words and words[-1] in ("const", "volatile", "restrict"):
        tail.add(words.pop())
    return text + "".join(f" {q}" for q in quals.split() if q not in tail)


class Declarator(Node):
    """A pointer, reference or pointer to member around ``inner``."""

    def __init__(self, inner: Node, sign: str) -> None:
        self.inner, self.sign = inner, sign

    def _collapsed(self) -> tuple[Node, str]:
        """Reference collapsing (& & -> &, && && -> &&), through a pack element too."""
        inner, sign = self.inner, self.sign
        while True:
            if isinstance(inner, (Pack, _ContextParam)) and _through(inner) is not inner:
                inner = _through(inner)
            elif (sign in ("&", "&&") and isinstance(inner, Declarator)
                  and inner.sign in ("&", "&&")):
                sign = "&&" if sign == inner.sign == "&&" else "&"
                inner = inner.inner
            else:
                return inner, sign

    def left(self) -> str:
        return self._in_scope(self._left)

    def right(self) -> str:
        return self._in_scope(self._right)

    def _in_scope(self, side) -> str:
        """A reference to a template parameter prints with the templates in force the first
        time it printed when it comes back through a substitution (libiberty's saved
        scopes, d_save_scope: ``OT0_`` read inside a local name's function names that
        function's argument wherever it is reused)."""
        if self.sign not in ("&", "&&") or not isinstance(self.inner, _ContextParam) \
                or self in _PRINTING:
            return side()
        key = id(self.inner)
        saved = _SAVED_SCOPES.setdefault(key, (self.inner, list(_TEMPLATES)))[1]
        held = _TEMPLATES[:]
        _TEMPLATES[:] = saved
        _PRINTING.append(self)
        try:
            return side()
        finally:
            _PRINTING.pop()
            _TEMPLATES[:] = held

    def _left(self) -> str:
        inner, sign = self._collapsed()
        if inner.wraps_declarator:
            text = inner.left()
            return text + ("" if text.endswith(" ") else " ") + "(" + sign
        if sign.endswith("::*"):
            return f"{inner.left()} {sign}"
        return inner.left() + sign

    def _right(self) -> str:
        inner, _ = self._collapsed()
        if inner.wraps_declarator:
            return ")" + inner.right()
        return inner.right()


class FunctionType(Node):
    def __init__(self, ret: Node | None, params: list[Node], quals: str = "") -> None:
        self.ret, self.params, self.quals = ret, params, quals

    def left(self) -> str:
        if self.ret is None:
            return ""
        text = self.ret.left()      # (a function returning a function pointer:
        return text if text.endswith(("(*", "(&")) else text + " "  # void (*(int))(char))

    def right(self) -> str:
        ret_right = self.ret.right() if self.ret is not None else ""
        return f"({params_text(self.params)}){ret_right}{self.quals}"

    @property
    def wraps_declarator(self) -> bool:
        return True


class ArrayType(Node):
    def __init__(self, element: Node, dimension: str | Node) -> None:
        self.element, self.dimension = element, dimension

    def left(self) -> str:
        return self.element.left()

    def right(self) -> str:
        inner = self.element.right()        # (int [12][8]: no blank between dimensions)
        if isinstance(self.element, ArrayType):
            inner = inner.lstrip(" ")
        return f" [{self.dimension}]" + inner

    @property
    def wraps_declarator(self) -> bool:
        return True


class Function(Node):
    """An encoding: [return type] name(params) qualifiers; the name prints in the
    enclosing template context, the types with the function template's arguments."""

    def __init__(self, name: Node, ret: Node | None, params: list[Node], quals: str) -> None:
        self.name, self.ret, self.params, self.quals = name, ret, params, quals
        self.context = _template_args(name)

    def left(self) -> str:
        name = str(self.name)
        if self.context is not None:
            _TEMPLATES.append(self.context)
        try:
            text = f"{name}({params_text(self.params)}){self.quals}"
            if self.ret is None:
                return text
            return self.ret.left() + " " + text + self.ret.right()
        finally:
            if self.context is not None:
                _TEMPLATES.pop()


def _template_args(name: Node) -> list[Node] | None:
    """The template arguments a function's types are printed with: its name's, or for a
    local name (``f()::g<int>``) the local entity's (libiberty: the typed name)."""
    if isinstance(name, Qualified) and isinstance(name.scope, Function):
        name = name.name
    return name.args if isinstance(name, Template) else None


BINARY_OPERATORS = {"aa": "&&", "oo": "||", "eq": "==", "ne": "!=", "pl": "+", "mi": "-",
                    "ml": "*", "dv": "/", "rm": "%", "an": "&", "or": "|", "eo": "^",
                    "ls": "<<", "rs": ">>", "le": "<=", "ge": ">="}
"""Binary operators of template-argument expressions (Itanium ABI <operator-name>)."""
UNARY_OPERATORS = {"nt": "!", "ng": "-", "co": "~"}


def _operand(node: Node) -> str:
    """An operator's operand as libiberty prints it: a name bare, anything else in ()."""
    if isinstance(node, Qualified) and not isinstance(node.name, Template) or \
            getattr(node, "is_name", False):
        return str(node)
    return f"({node})"      # (a template-id too: (std::declval<T&>)())


def _item(node: Node) -> tuple[str, str]:
    """One list item as libiberty prints it: (text, last character printed)."""
    if isinstance(node, Pack) and node.current is None:
        return _join(node.items)
    if isinstance(node, PackExpansion):
        text = ", ".join(node.texts())
        return text, text[-1:]
    text = str(node)
    return text, text[-1:]


def _join(nodes: list[Node]) -> tuple[str, str]:
    """libiberty's list printing: ", " between items; the ", " before a run of empty items
    (empty packs) that ends the list is taken back, leaving the last character a blank (so
    no "> >" after it) -- an empty item before a printed one keeps its separators
    (``CallOnce<, void>``). Returns (text, last char)."""
    pieces = [_item(node) for node in nodes]
    printed = [n for n, (piece, _) in enumerate(pieces) if piece]
    if not printed:
        return "", " " if len(nodes) > 1 else ""
    end = printed[-1]
    text = ", ".join(piece for piece, _ in pieces[:end + 1])
    return text, " " if end < len(nodes) - 1 else pieces[end][1]


def params_text(params: list[Node]) -> str:
    if len(params) == 1 and str(params[0]) == "void":
        return ""
    return _join(params)[0]


# -- the parser ---------------------------------------------------------------------------

class _Parser:
    def __init__(self, text: str) -> None:
        self.s, self.i = text, 0
        self.subs: list[Node] = []
        self.params: list[Node] = []
        self.in_args = 0
        self.in_lambda = 0
        self.naming = False

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def take(self, text: str) -> bool:
        if self.s.startswith(text, self.i):
            self.i += len(text)
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.take(text):
            raise Unsupported(f"expected {text!r} at {self.i}")

    def number(self) -> int:
        negative = self.take("n")
        start = self.i
        while self.peek().isdigit():
            self.i += 1
        if start == self.i:
            raise Unsupported("number")
        value = int(self.s[start:self.i])
        return -value if negative else value

    def seq_id(self) -> int:
        """``[<seq-id>] _`` in base 36: ``_`` is 0, ``0_`` is 1."""
        if self.take("_"):
            return 0
        start = self.i
        while self.peek().isdigit() or self.peek().isupper():
            self.i += 1
        if start == self.i:
            raise Unsupported("seq-id")
        value = int(self.s[start:self.i], 36)
        self.expect("_")
        return value + 1

    # -- encodings -----------------------------------------------------------------------
    def encoding(self, top: bool = False) -> Node:
        if self.peek() in ("T", "G"):
            special = self.special_name()
            if special is not None:
                return special
        self.naming = True
        name, quals = self.name()
        self.naming = False
        if self.peek() in ("", "E") or (top and self.peek() == "."):
            return name
        ret = None
        if _has_return_type(name):
            ret = self.type()
        params = [self.type()]
        while self.peek() not in ("", "E", "."):
            params.append(self.type())
        return Function(name, ret, params, quals)

    def special_name(self) -> Node | None:
        two = self.s[self.i:self.i + 2]
        if two[:1] == "T" and two[1:] in SPECIAL:
            self.i += 2
            return Text(SPECIAL[two[1]] + str(self.type()))
        if two == "Th":
            self.i += 2
            self.number()
            self.expect("_")
            return Text("non-virtual thunk to " + str(self.encoding()))
        if two == "Tv":
            self.i += 2
            self.number()
            self.expect("_")
            self.number()
            self.expect("_")
            return Text("virtual thunk to " + str(self.encoding()))
        if two == "Tc":
            raise Unsupported("covariant thunk")
        if two == "GV":
            self.i += 2
            return Text("guard variable for " + str(self.name()[0]))
        if two == "GR":             # GR <name> <number>: libiberty reads a bare number
            self.i += 2             # after the name (which took its discriminator)
            name = str(self.name()[0])
            return Text(f"reference temporary #{self.d_number()} for {name}")
        if self.take("GTt"):
            return Text("transaction clone for " + str(self.encoding()))
        if two == "TC":             # TC <derived> <offset> _ <base>
            self.i += 2
            derived = self.type()
            if self.peek() == "n":
                self.i += 1
            self.number()
            self.expect("_")
            base = self.type()
            return Text(f"construction vtable for {base}-in-{derived}")
        return None

    # -- names ---------------------------------------------------------------------------
    def name(self) -> tuple[Node, str]:
        """A <name>: (the name, the CV/ref qualifiers of a member function)."""
        c = self.peek()
        if c == "N":
            return self.nested_name()
        if c == "Z":
            return self.local_name()
        if c == "S" and self.peek(1) != "t":
            node = self.substitution()
            if self.peek() != "I":
                raise Unsupported("substitution as a name")
            return Template(node, self.template_args()), ""
        if self.take("St"):
            node: Node = Qualified(Text("std"), self.unqualified_name(None))
        else:
            node = self.unqualified_name(None)
        if self.peek() == "I":
            self.subs.append(node)
            node = Template(node, self.template_args())
        return node, ""

    def nested_name(self) -> tuple[Node, str]:
        self.expect("N")
        quals = self.cv_qualifiers()
        if self.take("R"):
            quals += " &"
        elif self.take("O"):
            quals += " &&"
        node: Node | None = None
        while True:
            c = self.peek()
            if c == "E":
                self.i += 1
                break
            was_sub = False
            if c == "S" and self.peek(1) == "t" and node is None:
                self.i += 2
                node = Text("std")
                continue
            if c == "S":
                part = self.substitution()
                was_sub = True
                node = part if node is None else Qualified(node, part)
            elif c == "I":
                if node is None:
                    raise Unsupported("template args without a name")
                node = Template(node, self.template_args())
            elif c == "T":
                part = self.template_param()
                node = part if node is None else Qualified(node, part)
            elif c == "D" and self.peek(1) in "tT":
                raise Unsupported("decltype prefix")
            elif c == "M":
                self.i += 1
                continue
            else:
                part = self.unqualified_name(node)
                node = part if node is None else Qualified(node, part)
            if not was_sub and self.peek() != "E":
                self.subs.append(node)
        if node is None:
            raise Unsupported("empty nested name")
        return node, quals

    def nested_encoding(self) -> Node:
        """An encoding inside a name (a local name's function, an ``L_Z`` literal): its own
        template arguments are what its T_ name, even inside an enclosing template
        argument list.  (libiberty resolves a T_ where it prints it, so a substitution of
        one used outside its encoding may print otherwise there: rare, see the tests.)"""
        saved_naming, saved_in_args, saved_params = self.naming, self.in_args, self.params
        self.in_args = 0
        function = self.encoding()
        self.naming, self.in_args, self.params = saved_naming, saved_in_args, saved_params
        return function

    def local_name(self) -> tuple[Node, str]:
        self.expect("Z")
        function = self.nested_encoding()
        if isinstance(function, Function):  # libiberty drops the enclosing return type
            function.ret = None
        self.expect("E")
        if self.take("s"):
            self.discriminator()
            return Qualified(function, Text("string literal")), ""
        default_arg = ""
        if self.take("d"):          # d [<number>] _: a default argument's scope, #1 for none
            default_arg = f"{{default arg#{self.discriminator_number()}}}::"
        start = self.i
        entity, quals = self.name()
        if not self.s.startswith(("Ul", "Ut"), start):  # (a closure or unnamed type has its
            self.discriminator()                        # number; libiberty reads no more)
        if default_arg:
            entity = Qualified(Text(default_arg[:-2]), entity)
        return Qualified(function, entity), quals

    def discriminator(self) -> None:
        """libiberty's d_discriminator: ``_`` or ``__``, a number (none: 0), and after
        ``__`` a number of two digits or more ends with ``_``."""
        if not self.take("_"):
            return
        two = self.take("_")
        number = self.d_number()
        if number < 0:
            raise Unsupported("negative discriminator")
        if number >= 10 and two:
            self.expect("_")

    def d_number(self) -> int:
        """libiberty's d_number: [n] digits, 0 for no digits."""
        negative = self.take("n")
        start = self.i
        while self.peek().isdigit():
            self.i += 1
        value = int(self.s[start:self.i] or "0")
        return -value if negative else value

    def unqualified_name(self, scope: Node | None) -> Node:
        c = self.peek()
        if c == "L":
            self.i += 1
            c = self.peek()
        if c.isdigit():
            node: Node = self.source_name()
        elif c == "C" or (c == "D" and self.peek(1) in "012459"):
            node = self.ctor_dtor(scope)
        elif c == "U":
            node = self.unnamed_type()
        elif c.islower():
            node = self.operator_name()
        else:
            raise Unsupported(f"unqualified name {c!r}")
        while self.peek() == "B":  # ABI tags
            self.i += 1
            tag = self.source_name()
            node = Text(f"{node}[abi:{tag}]", node.base_name())
        return node

    def source_name(self) -> Node:
        length = self.number()
        text = self.s[self.i:self.i + length]
        if length <= 0 or len(text) != length:
            raise Unsupported("source name")
        self.i += length
        if text.startswith("_GLOBAL_") and len(text) > 9 and text[8] in "._$" \
                and text[9] == "N":
            return Text("(anonymous namespace)")
        return Text(text)

    def ctor_dtor(self, scope: Node | None) -> Node:
        if scope is None:
            raise Unsupported("ctor without a class")
        base = getattr(scope, "ctor_name", None) or scope.base_name()
        if base.startswith("{unnamed type#") and isinstance(scope, Qualified):
            base = scope.scope.base_name()  # libiberty: the enclosing class's name
        if self.take("C"):
            inheriting = self.take("I")
            if self.peek() not in "12345":
                raise Unsupported("ctor kind")
            self.i += 1
            if inheriting:  # printed with the name of the class it inherits from
                base = self.type().base_name()
            return Text(base, ctor=True)
        self.expect("D")
        self.i += 1
        return Text("~" + base, ctor=True)

    def discriminator_number(self) -> int:
        """[<number>] _ of a closure or unnamed type: 1 for none, else the decimal + 2."""
        start = self.i
        while self.peek().isdigit():
            self.i += 1
        digits = self.s[start:self.i]
        self.expect("_")
        return int(digits) + 2 if digits else 1

    def unnamed_type(self) -> Node:
        if self.take("Ut"):
            n = self.discriminator_number()
            return Text(f"{{unnamed type#{n}}}")
        if self.take("Ul"):
            self.in_args += 1
            self.in_lambda += 1     # (a template parameter there is a generic lambda's
            params = [self.type()]  # auto:N, as libiberty prints it)
            while self.peek() != "E":
                params.append(self.type())
            self.in_lambda -= 1
            self.in_args -= 1
            self.expect("E")
            n = self.discriminator_number()
            _LAMBDA_PARAMS.append(True)
            try:
                text = params_text(params)
            finally:
                _LAMBDA_PARAMS.pop()
            return Text(f"{{lambda({text})#{n}}}")
        raise Unsupported("unnamed type")

    def operator_name(self) -> Node:
        code = self.s[self.i:self.i + 2]
        if code == "cv":
            self.i += 2
            saved = self.naming
            self.naming = False
            target = self.type()
            self.naming = saved
            return Text(f"operator {target}")
        if code == "li":
            self.i += 2
            return Text(f'operator"" {self.source_name()}')
        if code in OPERATORS:
            self.i += 2
            op = OPERATORS[code].rstrip()
            return Text("operator" + (" " if op[0].islower() else "") + op)
        if code[:1] == "v" and code[1:].isdigit():
            raise Unsupported("vendor operator")
        raise Unsupported(f"operator {code!r}")

    # -- substitutions and template parameters -------------------------------------------
    def substitution(self) -> Node:
        self.expect("S")
        c = self.peek()
        if c in STD_SUBS and c != "t":
            self.i += 1
            simple, full, last = STD_SUBS[c]
            after = self.peek()
            if after in ("C", "D"):
                node = Text(full, last)
            else:
                node = Text(simple, last)
            node.ctor_name = last  # type: ignore[attr-defined]
            return node
        index = self.seq_id()
        if index >= len(self.subs):
            raise Unsupported("substitution out of range")
        return self.subs[index]

    def template_param(self) -> Node:
        self.expect("T")
        index = self.seq_id()
        if self.in_lambda:
            node = Text(f"auto:{index + 1}")
            node.param_index = index        # type: ignore[attr-defined]
            return node
        if index >= len(self.params):
            raise Unsupported("template parameter out of range")
        return self.params[index]

    def template_args(self) -> list[Node]:
        self.expect("I")
        naming = self.naming and self.in_args == 0
        self.in_args += 1
        saved_naming, self.naming = self.naming, False
        args = []
        while not self.take("E"):
            if self.peek() == "":
                raise Unsupported("unterminated template args")
            args.append(self.template_arg())
        self.in_args -= 1
        self.naming = saved_naming
        if naming:
            self.params = args
        return args

    def template_arg(self) -> Node:
        c = self.peek()
        if c == "L":
            return self.literal()
        if c == "X":
            self.i += 1
            node = self.expression()
            self.expect("E")
            return node
        if c == "J":
            self.i += 1
            items = []
            while not self.take("E"):
                if self.peek() == "":
                    raise Unsupported("unterminated pack")
                items.append(self.template_arg())
            return Pack(items)
        return self.type()

    def expression(self) -> Node:
        """The few expressions printed as a plain name: a literal, a template parameter,
        an unresolved name with template arguments, ``sr`` <type> <name>; others are
        Unsupported."""
        c = self.peek()
        if c == "L":
            return self.literal()
        if c == "T":
            return self.template_param()
        if c.isdigit():
            return self.simple_id()
        if c == "a" and self.peek(1) == "d" and self.peek(2) == "L":
            self.i += 2             # ad L_Z <encoding> E: the address of a function or
            node = self.literal()   # object; libiberty names a plain function without its
            if isinstance(node, Function):  # parameters (&ns::f), prints a template or
                if node.quals or node.ret is not None or not isinstance(node.name, Qualified):
                    return Text(f"&({node})")   # (a member function: &X::f)
                node = node.name
            return Text(f"&{node}")
        two = self.s[self.i:self.i + 2]
        if two == "sZ" and self.peek(2) == "T":     # sizeof...(pack): printed as the
            self.i += 2                             # pack's length (libiberty)
            pack = self.template_param()
            return Text(str(len(pack.items) if isinstance(pack, Pack) else 0))
        if two == "sp":                     # a pack expansion in an expression
            self.i += 2
            pattern = self.expression()
            return PackExpansion(pattern, _find_pack(pattern))
        if two == "fp":                     # a function parameter: {parm#N}
            self.i += 2
            self.cv_qualifiers()
            node = Text(f"{{parm#{self.discriminator_number()}}}")
            node.is_name = True             # type: ignore[attr-defined]
            return node
        if two == "cl":                     # a call: callee(arguments)
            self.i += 2
            callee = self.expression()
            args = []
            while not self.take("E"):
                if self.peek() == "":
                    raise Unsupported("unterminated call")
                args.append(str(self.expression()))
            return Text(f"{_operand(callee)}({', '.join(args)})")
        if two in BINARY_OPERATORS:         # libiberty: each operand in parentheses
            self.i += 2                     # unless it is a (qualified) name
            left, right = self.expression(), self.expression()
            return Text(f"{_operand(left)}{BINARY_OPERATORS[two]}{_operand(right)}")
        if two in UNARY_OPERATORS:
            self.i += 2
            return Text(UNARY_OPERATORS[two] + _operand(self.expression()))
        if c == "s" and self.peek(1) == "r" and self.peek(2) == "N":
            self.i += 3             # srN <unresolved-type> [<template-args>] levels E name
            if self.peek() == "T":
                scope: Node = self.template_param()
            elif self.peek() == "S":
                scope = self.substitution()
            else:
                scope = self.simple_id()
            if self.peek() == "I":
                scope = Template(scope, self.template_args())
                self.subs.append(scope)
            while not self.take("E"):   # (each level a substitution candidate, as in a
                if not self.peek().isdigit():   # nested name)
                    raise Unsupported("unresolved qualifier")
                scope = Qualified(scope, self.source_name())
                self.subs.append(scope)
                if self.peek() == "I":
                    scope = Template(scope, self.template_args())
                    self.subs.append(scope)
            return Qualified(scope, self.simple_id())
        if c == "s" and self.peek(1) == "r" and self.peek(2) not in ("N", ""):
            self.i += 2             # an unresolved name: sr <type> <simple-id> (e.g.
            if not self.peek().isdigit():   # std::__is_scalar<int>::__value), sr, a
                return Qualified(self.type(), self.simple_id())   # template-id, <name>
            start, subs = self.i, len(self.subs)    # (GCC), or sr, levels of
            ids = [self.simple_id()]        # <simple-id>, E, <name> (clang)
            while self.peek().isdigit():
                ids.append(self.simple_id())
            if self.peek() == "E" and self.peek(1).isdigit():
                self.i += 1
                scope = ids[0]
                for level in ids[1:]:
                    scope = Qualified(scope, level)
                return Qualified(scope, self.simple_id())
            if len(ids) != 2:
                raise Unsupported("unresolved name")
            self.i = start          # GCC's sr <type> <name>: the type is a substitution
            del self.subs[subs:]    # candidate, as libiberty reads it
            scope = self.type()
            return Qualified(scope, self.simple_id())
        raise Unsupported("expression")

    def simple_id(self) -> Node:
        """<source-name> [<template-args>]: a name in an unresolved expression."""
        node: Node = self.source_name()
        if self.peek() == "I":
            return Template(node, self.template_args())
        node.is_name = True     # type: ignore[attr-defined]    # (_operand: printed bare)
        return node

    def literal(self) -> Node:
        self.expect("L")
        if self.take("_Z"):
            node = self.nested_encoding()
            self.expect("E")
            return node
        if self.peek() == "Z":
            raise Unsupported("literal name")
        kind = self.peek()
        if kind == "b" and self.peek(1) in "01" and self.peek(2) == "E":
            self.i += 3
            return Text("true" if self.s[self.i - 2] == "1" else "false")
        ty = self.type()
        negative = self.take("n")
        start = self.i
        while self.peek() not in ("E", ""):
            self.i += 1
        value = ("-" if negative else "") + self.s[start:self.i]
        self.expect("E")
        if kind in LITERAL_SUFFIX and value:
            return Text(value + LITERAL_SUFFIX[kind])
        return Text(f"({ty}){value}")

    # -- types ---------------------------------------------------------------------------
    def cv_qualifiers(self, function: bool = False) -> str:
        restrict, volatile, const = self.take("r"), self.take("V"), self.take("K")
        safe = function and self.take("Dx")     # a function type's transaction_safe and
        noexcept = function and self.take("Do")  # noexcept
        # (libiberty prints them in the reverse of their mangled order)
        return (" noexcept" * noexcept + " transaction_safe" * safe + " const" * const
                + " volatile" * volatile + " restrict" * restrict)

    def type(self) -> Node:
        c = self.peek()
        if c in BUILTINS:
            self.i += 1
            return Text(BUILTINS[c])
        if c == "D" and self.peek(1) in D_BUILTINS:
            self.i += 2
            return Text(D_BUILTINS[self.s[self.i - 1]])
        if c == "u":
            raise Unsupported("vendor type")
        if c in "rVK" or c == "D" and self.peek(1) in "xo":
            quals = self.cv_qualifiers(function=True)
            inner = self.type()
            node: Node = Qualifiers(inner, quals)
            if isinstance(inner, FunctionType):
                inner.quals += quals        # a member function's qualifiers: only the
                node = inner                # qualified type is a substitution candidate
                if self.subs and self.subs[-1] is inner:
                    self.subs.pop()
        elif c == "P":
            self.i += 1
            node = Declarator(self.type(), "*")
        elif c in "RO":
            self.i += 1
            sign = "&" if c == "R" else "&&"
            node = Declarator(self.type(), sign)
        elif c == "F":
            node = self.function_type()
        elif c == "A":
            node = self.array_type()
        elif c == "M":
            self.i += 1
            cls = self.type()
            member = self.type()
            node = Declarator(member, f"{cls}::*")
        elif c == "T":
            start = self.i
            node = self.template_param()
            index = getattr(node, "param_index", None)
            # (a generic lambda's auto:N: the substitution names the template parameter,
            # which libiberty prints where it is used -- outside, the enclosing template's)
            self.i = start + 1
            if index is None:
                node = _ContextParam(self.seq_id(), node, self.params)
            else:               # (in a closure's parameters: printed auto:N there)
                node = _ContextParam(self.seq_id(), _LaterParam(self, index), None)
            self.subs.append(node)
            if self.peek() == "I":
                node = Template(node, self.template_args())
            else:
                return node
        elif c == "S" and (self.peek(1).isdigit() or self.peek(1) in "_" or
                           self.peek(1).isupper()):
            node = self.substitution()
            if self.peek() != "I":
                return node
            node = Template(node, self.template_args())
        elif c == "S" and self.peek(1) != "t":
            node = self.substitution()
            if self.peek() != "I":
                return node
            node = Template(node, self.template_args())
        elif c == "D" and self.peek(1) == "p":
            self.i += 2
            pattern = self.type()
            node = PackExpansion(pattern, _find_pack(pattern))
        elif c in "NZ" or c.isdigit() or c == "S" or c == "U":
            node, _ = self.name()
        elif c == "D" and self.peek(1) in ("T", "t"):   # decltype (expression)
            self.i += 2
            node = Text(f"decltype ({self.expression()})")
            self.expect("E")
        elif c == "D" and self.peek(1) == "v":
            raise Unsupported("vector type")
        else:
            raise Unsupported(f"type {c!r}")
        self.subs.append(node)
        return node

    def function_type(self) -> Node:
        self.expect("F")
        self.take("Y")
        ret = self.type()
        params = []
        quals = ""
        while True:
            if self.take("E"):
                break
            if self.peek() in "RO" and self.peek(1) == "E":
                quals += " &" if self.peek() == "R" else " &&"
                self.i += 1
                continue
            if self.peek() == "":
                raise Unsupported("unterminated function type")
            params.append(self.type())
        return FunctionType(ret, params, quals)

    def array_type(self) -> Node:
        self.expect("A")
        start = self.i
        while self.peek().isdigit():
            self.i += 1
        dimension: str | Node = self.s[start:self.i]
        if not dimension and self.peek() != "_":
            dimension = self.expression()       # (a template argument: A T_ _)
        self.expect("_")
        return ArrayType(self.type(), dimension)


def _find_pack(node: Node, printing: bool = False) -> Pack | None:
    """The first argument pack inside a pack expansion's pattern: its template parameters
    read as parsed, or (``printing``) resolved where the expansion prints (d_find_pack)."""
    if isinstance(node, Pack):
        return node
    if isinstance(node, _ContextParam):
        target = node.resolved(element=False) if printing else node.target
        return target if isinstance(target, Pack) else None
    for child in vars(node).values():
        children = child if isinstance(child, list) else [child]
        for item in children:
            if isinstance(item, Node):
                found = _find_pack(item, printing)
                if found is not None:
                    return found
    return None


def _has_return_type(name: Node) -> bool:
    """Template functions carry their return type, except ctors, dtors and conversions."""
    if isinstance(name, Qualified) and isinstance(name.scope, Function):
        return _has_return_type(name.name)      # (a local name: its entity's)
    if not isinstance(name, Template):
        return False
    inner = name.name
    last = inner.name if isinstance(inner, Qualified) else inner
    if getattr(last, "ctor", False):
        return False
    text = str(last)
    return not (text.startswith("operator ") and not text.startswith(("operator new",
                                                                      "operator delete")))


def demangle(name: str) -> str | None:
    """``name`` demangled as libiberty's cplus_demangle (DMGL_PARAMS) prints it, or None."""
    if not name.startswith("_Z"):
        return None
    parser = _Parser(name)
    parser.i = 2
    _SAVED_SCOPES.clear()
    _TEMPLATES.clear()
    _PACK_INDEX.clear()
    try:
        node = parser.encoding(top=True)
        text = str(node)
        while parser.peek() == "." and (parser.peek(1).islower() or parser.peek(1) == "_"
                                        or parser.peek(1).isdigit()):
            start = parser.i
            parser.i += 2
            while parser.peek().islower() or parser.peek().isdigit() or parser.peek() == "_":
                parser.i += 1
            while parser.peek() == "." and parser.peek(1).isdigit():
                parser.i += 2
                while parser.peek().isdigit():
                    parser.i += 1
            text += f" [clone {name[start:parser.i]}]"
    except (Unsupported, RecursionError, IndexError, ValueError):
        return None
    if parser.i != len(name):
        return None
    return text


def demangle_symbol(name: str) -> str:
    """``bfd_demangle``: the name without its ``@suffix`` demangled, the suffix put back;
    the name itself when it does not demangle."""
    base, at, suffix = name.partition("@")
    text = demangle(base)
    return name if text is None else text + at + suffix
