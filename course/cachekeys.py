"""Cache keys that travel: code keyed by its source tokens, values by what they are, never by an address.

A class or function is keyed by the tokens of its source (comments, blank lines and indentation width do
not count) and, transitively, by what its code reads: the helper functions it calls, the module constants
and the classes it builds. Code from torch, numpy, the standard library or an installed package is keyed
by its name only. Nothing here depends on the Python version, the platform or torch's version, and this
module imports no torch, so any Python can compute (and check) a key.

Keys are built in two steps: a raw tree, whose code parts are {"$source": text} (the text itself) and
{"$digest": parts} (a hash to take), then `fold`, which hashes those parts; `cache_key(fold(tree))`.
"""
from __future__ import annotations

import ast
import builtins
import dis
import functools
import hashlib
import inspect
import io
import json
import linecache
import math
import site
import sys
import sysconfig
import textwrap
import tokenize
import types
from dataclasses import fields, is_dataclass
from pathlib import Path

KEY_LENGTH = 20
PLAIN = (bool, int, float, str, type(None))
# Packages whose code is keyed by name only: their version is the user's environment, not the course.
LIBRARY_PACKAGES = {"torch", "torchvision", "numpy"}
# What to pass instead of a hook whose values cannot be keyed.
HOOK_ADVICE = {
    "corruption": "a dataclass hook such as GaussianNoise(noise_std) (or MaskingNoise, SaltAndPepper) "
                  "from course.training",
    "penalty": "a dataclass hook such as L1Penalty(weight) (or KLSparsity(weight, target)) from course.training",
    "objective": "a dataclass hook such as Reconstruction(penalty=L1Penalty(weight)) or NegativeELBO(beta) "
                 "from course.training",
    "model": "the model's class itself, with its arguments in model_args",
}
_SKIPPED_TOKENS = {tokenize.COMMENT, tokenize.NL, tokenize.ENDMARKER, tokenize.ENCODING}
_MARKS = {tokenize.NEWLINE: "<newline>", tokenize.INDENT: "<indent>", tokenize.DEDENT: "<dedent>"}
_FSTRING_START = getattr(tokenize, "FSTRING_START", None)  # Python 3.12+ splits an f-string into tokens
_FSTRING_END = getattr(tokenize, "FSTRING_END", None)


class UnkeyableError(ValueError):
    """A hook, model or argument that holds or reads a value no key can describe (a tensor, an object)."""


class _Unkeyable(Exception):
    """A value that cannot be part of a key; `name` is the variable or field that holds it."""

    def __init__(self, name: str, value):
        super().__init__(name)
        self.name, self.value = name, value


# --- hashing ---------------------------------------------------------------------------------------

def digest(obj) -> str:
    """The hash of plain JSON data: the same data, the same hash, in any Python."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:KEY_LENGTH]


def cache_key(config: dict) -> str:
    """The hash of a run_config: the same settings, the same key, in every process and Python version."""
    return digest(config)


def source_tokens(text: str) -> list[str]:
    """The tokens of Python source, without comments, blank lines or indentation widths.

    An f-string is one token, its text as written (Python 3.12 and later split it, earlier ones do not).
    """
    text = textwrap.dedent(text)
    lines = text.splitlines(True)
    out, start, depth = [], None, 0
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == _FSTRING_START:
                depth += 1
                start = tok.start if depth == 1 else start
            elif tok.type == _FSTRING_END:
                depth -= 1
                if depth == 0:
                    out.append(_between(lines, start, tok.end))
            elif depth or tok.type in _SKIPPED_TOKENS:
                continue
            else:
                out.append(_MARKS.get(tok.type, tok.string))
    except (tokenize.TokenError, SyntaxError):  # text that is not whole Python: its words, spacing aside
        return ["<text>", *text.split()]
    return out


def _between(lines: list[str], start: tuple[int, int], end: tuple[int, int]) -> str:
    (row0, col0), (row1, col1) = start, end
    if row0 == row1:
        return lines[row0 - 1][col0:col1]
    return lines[row0 - 1][col0:] + "".join(lines[row0:row1 - 1]) + lines[row1 - 1][:col1]


@functools.lru_cache(maxsize=512)
def source_digest(text: str) -> str:
    """The hash of a source text's tokens."""
    return digest(source_tokens(text))


def fold(tree):
    """Hash the code parts of a raw key tree: {"$source": text} and {"$digest": parts} become hashes."""
    if isinstance(tree, dict):
        if set(tree) == {"$source"}:
            return source_digest(tree["$source"])
        if set(tree) == {"$digest"}:
            return digest(fold(tree["$digest"]))
        return {k: fold(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [fold(v) for v in tree]
    return tree


# --- what is library code --------------------------------------------------------------------------

def is_library(obj) -> bool:
    """Whether `obj` (a function or class) comes from torch, an installed package or the standard library."""
    top = (getattr(obj, "__module__", None) or "").split(".")[0]
    if top == "course":  # the course's own code is keyed by its code, even when installed as a package
        return False
    if top in LIBRARY_PACKAGES:
        return True
    code = getattr(obj, "__code__", None)
    if isinstance(code, types.CodeType):
        return _in_library_folder(code.co_filename)
    if not isinstance(obj, type):
        return True  # a function written in C
    name = obj.__module__
    if name == "builtins":  # exec'd code without __name__ claims builtins too
        return getattr(builtins, obj.__qualname__, None) is obj
    module = sys.modules.get(name)
    if module is None or name == "__main__":
        return False
    file = getattr(module, "__file__", None)
    return name in sys.builtin_module_names if file is None else _in_library_folder(file)


def _is_library_module(module: types.ModuleType) -> bool:
    top = module.__name__.split(".")[0]
    if top == "course":
        return False
    file = getattr(module, "__file__", None)
    return top in LIBRARY_PACKAGES or file is None or _in_library_folder(file)


def _in_library_folder(filename: str) -> bool:
    path = Path(filename).resolve()
    return any(path.is_relative_to(folder) for folder in _library_folders())


@functools.lru_cache(maxsize=1)
def _library_folders() -> tuple[Path, ...]:
    paths = sysconfig.get_paths()
    folders = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    folders.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    folders.add(site.getusersitepackages())
    return tuple(Path(folder).resolve() for folder in folders)


# --- finding source --------------------------------------------------------------------------------

def _lines(code: types.CodeType) -> list[str]:
    return linecache.getlines(code.co_filename)


def _code_key(code: types.CodeType) -> list:
    """Bytecode, constants and names: the last resort for code whose source Python cannot find."""
    def const(value):
        if isinstance(value, types.CodeType):
            return _code_key(value)
        if isinstance(value, frozenset):  # `x in {"a", "b"}`: its order changes with the hash seed
            return sorted(repr(v) for v in value)
        if isinstance(value, tuple):
            return [const(v) for v in value]
        return repr(value)

    return ["bytecode", code.co_code.hex(), [const(c) for c in code.co_consts], list(code.co_names),
            code.co_argcount, code.co_kwonlyargcount]


def class_source(cls: type) -> str | None:
    """The source of a class, found through its methods' code (which knows its file and line, even for a
    notebook cell that IPython keeps in linecache), else by inspect; None when neither can."""
    node, lines, _ = _class_node(cls)
    if node is not None:
        start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
        return "".join(lines[start - 1:node.end_lineno])
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):  # no method with a file, and a class from a notebook cell or exec'd text
        return None


def _class_node(cls: type) -> tuple[ast.ClassDef | None, list[str], str | None]:
    for code in _method_codes(cls):
        lines = _lines(code)
        if not lines:
            continue
        try:
            tree = ast.parse("".join(lines))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.ClassDef) and node.name == cls.__name__
                    and node.lineno <= code.co_firstlineno <= node.end_lineno):
                return node, lines, code.co_filename
    return None, [], None


def _methods(cls: type) -> list[types.FunctionType]:
    """The functions defined in a class's body (static and class methods and properties included)."""
    found = []
    for _, attr in sorted(vars(cls).items()):
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        if isinstance(attr, property):
            attr = attr.fget
        if isinstance(attr, types.FunctionType):
            found.append(attr)
    return found


def _method_codes(cls: type) -> list[types.CodeType]:
    return [fn.__code__ for fn in _methods(cls)]


def function_source(fn: types.FunctionType) -> str | None:
    """The source of a function; for a lambda, the lambda expression alone; None when Python has none."""
    code = fn.__code__
    if fn.__name__ != "<lambda>":
        try:
            return inspect.getsource(fn)
        except (OSError, TypeError):
            return None
    lines = _lines(code)
    if not lines:
        return None
    text = "".join(lines)
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    args = list(code.co_varnames[:code.co_argcount + code.co_kwonlyargcount])
    found = [node for node in ast.walk(tree) if isinstance(node, ast.Lambda) and node.lineno == code.co_firstlineno
             and [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs] == args]
    if len(found) > 1 and hasattr(code, "co_positions"):  # several alike on one line: the one this code is
        columns = {col for line, _, col, _ in code.co_positions() if line == code.co_firstlineno and col is not None}
        found = [n for n in found if any(n.body.col_offset <= c < (n.body.end_col_offset or 0) for c in columns)] or found
    segments = [ast.get_source_segment(text, node) for node in sorted(found, key=lambda n: n.col_offset)]
    return "\n".join(s for s in segments if s) or None


def _global_names(code: types.CodeType) -> set[str]:
    """The global names `code` (and the functions nested in it) reads."""
    names = {ins.argval for ins in dis.get_instructions(code)
             if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS")}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _body_names(node: ast.ClassDef) -> set[str]:
    """Names a class body reads outside its methods (`scale = SCALE`, decorators) and does not define."""
    defined, read = set(), set()
    for stmt in node.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            defined.add(stmt.name)
            parts = stmt.decorator_list + stmt.args.defaults + [d for d in stmt.args.kw_defaults if d]
        else:
            parts = [stmt]
        for part in parts:
            for sub in ast.walk(part):
                if isinstance(sub, ast.Name):
                    (read if isinstance(sub.ctx, ast.Load) else defined).add(sub.id)
    for part in node.decorator_list:
        read |= {sub.id for sub in ast.walk(part) if isinstance(sub, ast.Name)}
    return read - defined


# --- the keyer -------------------------------------------------------------------------------------

class Keyer:
    """Turns hooks, functions, classes and their values into a raw key tree that is the same in every process."""

    def __init__(self):
        self.done: dict[int, object] = {}  # id -> raw tree: an object read twice is keyed once
        self.active: set[int] = set()  # being keyed now: a class or function that refers to itself
        self.keep: list = []  # the keyed objects, alive while their ids are in `done`

    def value(self, value, name: str):
        if isinstance(value, float) and not math.isfinite(value):
            return repr(value)
        if isinstance(value, PLAIN):
            return value
        if isinstance(value, (list, tuple)):
            return [self.value(v, name) for v in value]
        if isinstance(value, (set, frozenset)):
            return sorted((self.value(v, name) for v in value), key=repr)
        if isinstance(value, dict) and all(isinstance(k, PLAIN) for k in value):
            return {str(k): self.value(v, name) for k, v in sorted(value.items(), key=lambda kv: repr(kv[0]))}
        torch = sys.modules.get("torch")  # never imported here: without torch no value can be a torch dtype
        if torch is not None and isinstance(value, (torch.dtype, torch.device)):
            return {"torch": str(value)}
        if inspect.ismodule(value):
            return self.module(value)
        if isinstance(value, type):
            return self.cls(value)
        if is_dataclass(value):
            return self.hook(value)
        if isinstance(value, functools.partial):
            return {"partial": self.value(value.func, name), "args": self.value(value.args, name),
                    "keywords": self.value(value.keywords, name)}
        if inspect.ismethod(value):
            return {"method": self.value(value.__func__, name), "self": self.value(value.__self__, name)}
        if isinstance(value, types.FunctionType):
            return self.function(value)
        if isinstance(value, types.BuiltinFunctionType) or (callable(value) and is_library(value)
                                                            and hasattr(value, "__qualname__")):
            return {"function": f"{getattr(value, '__module__', None)}.{value.__qualname__}"}
        raise _Unkeyable(name, value)

    def module(self, module: types.ModuleType) -> dict:
        """A library module by name; the course's or a student's own module by its source."""
        if _is_library_module(module):
            return {"module": module.__name__}
        try:
            return {"module": module.__name__, "code": {"$source": inspect.getsource(module)}}
        except (OSError, TypeError):
            return {"module": module.__name__}

    def hook(self, hook) -> dict:
        """A dataclass hook: its class's name and code, and its fields (which may be hooks themselves)."""
        cls = type(hook)
        code = self.cls(cls)
        return {"kind": cls.__qualname__, "code": code.get("code", code["class"]),
                "fields": {f.name: self.value(getattr(hook, f.name), f.name) for f in fields(hook)}}

    def _once(self, obj, label: dict, build):
        if is_library(obj):
            return label
        if id(obj) in self.done:
            return self.done[id(obj)]
        if id(obj) in self.active:  # a reference to itself: its name, its code is being keyed
            return label
        self.active.add(id(obj))
        try:
            tree = {**label, "code": {"$digest": build()}}
        finally:
            self.active.discard(id(obj))
        self.done[id(obj)] = tree
        self.keep.append(obj)
        return tree

    def cls(self, cls: type) -> dict:
        """A class: for itself and each base outside the libraries, its source and what its code reads."""
        label = {"class": f"{cls.__module__}.{cls.__qualname__}"}
        return self._once(cls, label, lambda: [self._class_part(k) for k in cls.__mro__ if not is_library(k)])

    def _class_part(self, klass: type) -> list:
        source = class_source(klass)
        node, _, filename = _class_node(klass)
        written = [fn for fn in _methods(klass)  # those in its source, not generated ones (dataclass __init__)
                   if node is not None and fn.__code__.co_filename == filename
                   and node.lineno <= fn.__code__.co_firstlineno <= node.end_lineno]
        if source is None:  # exec'd text Python cannot show: the bytecode of every method
            return [klass.__qualname__, {fn.__name__: _code_key(fn.__code__) for fn in _methods(klass)}]
        reads = {}
        for fn in written:
            reads.update(self._reads(fn, _global_names(fn.__code__)))
            if fn.__defaults__ or fn.__kwdefaults__:
                reads[f"{fn.__name__}()"] = self.value([fn.__defaults__ or (), fn.__kwdefaults__ or {}],
                                                       f"{klass.__qualname__}.{fn.__name__}'s defaults")
        if node is not None:
            namespace = written[0].__globals__ if written else vars(sys.modules.get(klass.__module__, builtins))
            reads.update(self._reads_from(namespace, _body_names(node), klass.__module__))
        return [klass.__qualname__, {"$source": source}, dict(sorted(reads.items()))]

    def function(self, fn: types.FunctionType) -> dict:
        """A function or lambda: its source, defaults, closed-over values and the globals it reads."""
        label = {"function": f"{fn.__module__}.{fn.__qualname__}"}
        return self._once(fn, label, lambda: self._function_parts(fn))

    def _function_parts(self, fn: types.FunctionType) -> list:
        code = fn.__code__
        closure = {}
        for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
            try:
                contents = cell.cell_contents
            except ValueError:  # an empty cell: a variable not yet assigned
                closure[name] = "<empty>"
                continue
            closure[name] = self.value(contents, name)
        source = function_source(fn)
        return [{"$source": source} if source is not None else _code_key(code),
                self.value(fn.__defaults__ or (), "its defaults"), self.value(fn.__kwdefaults__ or {}, "its defaults"),
                closure, self._reads(fn, _global_names(code))]

    def _reads(self, fn: types.FunctionType, names: set[str]) -> dict:
        return self._reads_from(fn.__globals__, names, fn.__module__)

    def _reads_from(self, namespace: dict, names: set[str], module: str | None) -> dict:
        """The values of the global names code reads; in the course's own modules a value that cannot be
        keyed is keyed by its module's source instead (so a course constant never blocks a key)."""
        reads = {}
        for name in sorted(names):
            if name not in namespace:
                continue
            try:
                reads[name] = self.value(namespace[name], name)
            except _Unkeyable:
                home = sys.modules.get(module or "")
                if not (module or "").startswith("course") or home is None:
                    raise
                reads[name] = {"global": name, **self.module(home)}
        return reads


def label(hook) -> str:
    """A short readable name of a hook for messages."""
    if isinstance(hook, (types.FunctionType, functools.partial, types.MethodType)):
        target = hook.func if isinstance(hook, functools.partial) else hook
        name = getattr(target, "__name__", type(target).__name__)
        return "lambda" if name == "<lambda>" else name
    text = repr(hook)
    return text if len(text) <= 60 and " at 0x" not in text else type(hook).__qualname__


def unkeyable_error(role: str, hook, err: _Unkeyable) -> UnkeyableError:
    """The error for a hook or model that uses a value no key can describe, saying what to pass instead."""
    return UnkeyableError(
        f"{role}={label(hook)} uses `{err.name}`, a "
        f"{type(err.value).__module__}.{type(err.value).__qualname__} object, which cannot be part of the "
        "model cache key (numbers, strings, bools, None, and lists, tuples and dicts of these can; so can "
        f"dataclass hooks and functions over such values). Pass {HOOK_ADVICE.get(role, 'a dataclass hook')} "
        f"instead, or make `{err.name}` a plain number.")


def hook_tree(hook, role: str = "hook", keyer: Keyer | None = None):
    """The raw key tree of a hook (a dataclass hook, a function or a lambda); None for None.

    Raises UnkeyableError, saying what to pass instead, when the hook holds or reads a value that
    cannot be keyed (a tensor, a module, an arbitrary object).
    """
    if hook is None:
        return None
    keyer = keyer or Keyer()
    try:
        if is_dataclass(hook) and not isinstance(hook, type):
            return keyer.hook(hook)
        if isinstance(hook, (types.FunctionType, types.BuiltinFunctionType, functools.partial, types.MethodType,
                             type)):
            return keyer.value(hook, role)
    except _Unkeyable as err:
        raise unkeyable_error(role, hook, err) from None
    raise UnkeyableError(
        f"{role}={label(hook)} is a {type(hook).__qualname__} object, which cannot be part of the model cache "
        f"key. Pass {HOOK_ADVICE.get(role, 'a dataclass hook')}, or a plain function.")


def hook_config(hook, role: str = "hook") -> dict | None:
    """The plain-data key of a hook (a dataclass hook, a function or a lambda); None for None."""
    return fold(hook_tree(hook, role))
