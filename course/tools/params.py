"""Notebook parameters given on the command line, read as the type each notebook's `parameters` cell gives them."""
from __future__ import annotations

import ast
import json
from pathlib import Path

# Parameters the command sets itself, and the option that sets each.
RESERVED = {"device": "--device", "output_dir": "--out"}
# How a bool may be spelled on the command line.
BOOL_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
# A value standing for each type papermill may infer from an annotation (`epochs: int = 15`).
ANNOTATED = {"int": 0, "float": 0.0, "bool": False, "str": ""}


class ParameterError(ValueError):
    """A -p value that does not fit the notebook's parameter, or a name no notebook declares."""


def parse_value(text: str):
    """A value with no type to go by, read as papermill's -p reads it (True, False, None, int, float, else
    the text), plus JSON lists."""
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            pass
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def declared(path: Path) -> dict[str, dict]:
    """{name: papermill's description} of a notebook's parameters, plus "template": a value of the type
    the parameter takes (its default, or one standing for its annotation), None when any value goes."""
    from papermill import inspect_notebook

    found = inspect_notebook(str(path))
    for info in found.values():
        try:
            default = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError, TypeError):  # an expression, e.g. a call: its type is unknown
            default = None
        info["template"] = ANNOTATED.get(info["inferred_type_name"], default)
    return found


def _kind(template) -> str:
    """The type a template stands for, in words."""
    if isinstance(template, bool):
        return "a bool (true/false, yes/no, on/off)"
    if isinstance(template, int):
        return "an int"
    if isinstance(template, float):
        return "a number"
    if isinstance(template, (list, tuple)):
        return f"a list like {json.dumps(list(template))}"
    return f"a {type(template).__name__}"


def fits(value, template) -> bool:
    """Whether `value` has the type of `template`; a float takes an int, a list's items fit one of the template's."""
    if template is None or isinstance(template, str) and isinstance(value, str):
        return True
    if isinstance(template, bool) or isinstance(value, bool):
        return isinstance(template, bool) and isinstance(value, bool)
    if isinstance(template, float):
        return isinstance(value, (int, float))
    if isinstance(template, (list, tuple)):
        return isinstance(value, (list, tuple)) and all(
            not template or any(fits(item, t) for t in template) for item in value)
    return isinstance(value, type(template))


def read_value(text: str, template):
    """Text read as a value of the template's type; ValueError when it is not one."""
    if template is None:
        return parse_value(text)
    if isinstance(template, str):
        return text
    if isinstance(template, bool):
        return BOOL_WORDS[text.strip().lower()]  # KeyError is a LookupError, turned into ValueError below
    if isinstance(template, (int, float)):
        return type(template)(text.strip())
    if isinstance(template, (list, tuple, dict)):
        try:
            value = json.loads(text)
        except ValueError:
            value = ast.literal_eval(text)  # Python spelling: [(1, 7)], ['a'], {'k': 1}
        if not fits(value, template):
            raise ValueError(text)
        return value
    raise ValueError(text)


def _read(name: str, value, info: dict, stem: str):
    template = info["template"]
    try:
        read = read_value(value, template) if isinstance(value, str) else value
    except (ValueError, LookupError, SyntaxError, TypeError):
        read = value
    else:
        if fits(read, template):
            return read
    raise ParameterError(f"-p {name}: {value!r} is not {_kind(template)} "
                         f"(the default in {stem} is {info['default']})")


def assign(declarations: dict[Path, dict], parameters: dict) -> dict[Path, dict]:
    """Give each notebook (path: its `declared` parameters) the parameters it declares, read as their types.

    Text (from the command line) is read as the parameter's type; other values must already have it.
    A reserved name, a name no notebook declares and a value that does not fit are errors.
    """
    for name in parameters:
        if name in RESERVED:
            raise ParameterError(f"-p {name}: set it with {RESERVED[name]} instead")
        if not any(name in names for names in declarations.values()):
            known = ", ".join(sorted(set().union(*declarations.values()) - set(RESERVED))) or "none"
            raise ParameterError(f"-p {name}: no selected notebook has a parameter named {name!r} "
                                 f"(they have: {known})")
    return {path: {name: _read(name, value, found[name], path.stem)
                   for name, value in parameters.items() if name in found}
            for path, found in declarations.items()}


# What each parameter of the course's notebooks allows, checked before any kernel starts. The test split's
# smallest size is the offline sample's (1,000 images; 500 in a smoke run); 03 shows 8 images from image_index on.
SMALLEST_TEST_SPLIT = {False: 1000, True: 500}
IMAGES_FROM_INDEX = 8
SEED_LIMIT = 2**64  # torch.manual_seed takes seeds below 2**64


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def rules(smoke: bool) -> dict:
    """parameter name: (kind, test of a read value, what is allowed), for a run with or without the smoke switch.

    A value of another kind ('abc' for an int) is left to the type check, which knows each notebook's default.
    """
    last = SMALLEST_TEST_SPLIT[bool(smoke)] - IMAGES_FROM_INDEX
    return {
        "batch_size": ("number", lambda v: v >= 1, "at least 1"),
        "epochs": ("number", lambda v: v >= 1, "at least 1"),
        "lr": ("number", lambda v: v > 0, "above 0"),
        "seed": ("number", lambda v: 0 <= v < SEED_LIMIT, f"at least 0 and below 2**64 ({SEED_LIMIT:,})"),
        "image_index": ("number", lambda v: 0 <= v <= last,
                        f"from 0 to {last} (the smallest test split holds {SMALLEST_TEST_SPLIT[bool(smoke)]:,} "
                        f"images{' in a smoke run' if smoke else ''}, and 03 shows {IMAGES_FROM_INDEX} from there)"),
        "hidden_sizes": ("list", lambda v: len(v) > 0 and all(_whole(h) and h >= 1 for h in v),
                         "a non-empty list of widths, each at least 1, e.g. [64, 128]"),
        "penalty_weights": ("list", lambda v: len(v) > 0 and all(_number(w) and w >= 0 for w in v),
                            "a non-empty list of weights, each at least 0, e.g. [0.0, 0.1]"),
        "data_root": ("any", lambda v: v is None or isinstance(v, str), "a folder path (text), or None for the default"),
    }


_KINDS = {"number": _number, "list": lambda v: isinstance(v, list), "any": lambda v: True}


def check_rules(parameters: dict, smoke: bool = False) -> None:
    """ParameterError naming the first -p value outside what its parameter allows (text read as papermill does)."""
    table = rules(smoke)
    for name, text in parameters.items():
        if name not in table:
            continue
        value = parse_value(text) if isinstance(text, str) else text
        kind, allowed, rule = table[name]
        if _KINDS[kind](value) and not allowed(value):
            raise ParameterError(f"-p {name}: {text!r} is out of range; {name} must be {rule}")
