"""The toy world's building blocks: argument kinds, the `Task` a family builds, the registry.

A *family* is a function `build(rng) -> Task` registered with `@family(...)`. One call draws the
family's parameters (constants, conditions, pipeline structure) and returns everything needed to
write one instance: phrasings of the problem, CoT steps (several wordings each), code bodies in
several styles, a reference function, an input generator and edge-case inputs. `ToyWorld` (in
`world.py`) names the function and arguments, picks wordings and a style, runs the code on ten
inputs to write the asserts, and assigns the split.

Text fields are `string.Template`s: `$a`, `$b` (argument names), `$fn` (function name). Code
bodies are written without indentation; the world indents them under the `def` line.
"""

from __future__ import annotations

import ast
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from random import Random
from typing import Any


@dataclass(frozen=True)
class Arg:
    hint: str  # type hint in the signature
    descs: tuple[str, ...]  # noun phrases: "a list of integers"
    pool: str  # names.ARG_POOLS key, or "lo"/"hi" for a matched pair of integer bounds


INTS = Arg("list[int]", ("a list of integers", "a list of ints", "an integer list"), "ints")
INTS2 = Arg("list[int]", ("a second list of integers", "another list of ints"), "ints2")
WORDS = Arg(
    "list[str]", ("a list of words", "a list of strings", "a list of lowercase words"), "words"
)
STR = Arg("str", ("a string", "a piece of text", "a text string"), "str")
INT = Arg("int", ("an integer", "a whole number", "an int"), "int")
POS_INT = Arg(
    "int", ("a positive integer", "an integer (at least 1)", "a positive whole number"), "int"
)
LO = Arg("int", ("an integer lower bound", "the first integer of the range"), "lo")
HI = Arg("int", ("an integer upper bound", "the last integer of the range"), "hi")
DICT = Arg(
    "dict[str, int]",
    ("a dict from strings to integers", "a mapping of str keys to int values"),
    "dict",
)
DICT2 = Arg(
    "dict[str, int]", ("a second dict from strings to ints", "another str-to-int mapping"), "dict2"
)
GRID = Arg(
    "list[list[int]]",
    ("a list of rows of integers", "a matrix given as a list of int lists"),
    "grid",
)


@dataclass
class Task:
    """One drawn instance of a family, before naming (see module docstring)."""

    params: dict[str, Any]  # constants + structure; (family, params) decides the split
    args: list[Arg]
    returns: str  # return type hint
    what: list[str]  # noun phrases for the result ("the number of vowels in `$a`")
    steps: list[list[str]]  # CoT plan: one entry per step, several wordings each
    bodies: dict[str, str]  # style ("loop"/"comp"/"builtin") -> function body
    ref: Callable[..., Any]  # independent reference implementation (tests compare it)
    gen: Callable[[Random], tuple]  # one random argument tuple
    edges: list[tuple]  # edge-case argument tuples (empty input, ...)
    consts: list[str]  # the plan's constants as written in text; must appear in problem and CoT
    doc: list[str]  # docstring wordings
    notes: list[list[str]] = field(default_factory=list)  # extra problem sentences (wordings)
    depth: int = 1  # composition depth -> difficulty
    imports: tuple[str, ...] = ()
    stages: list[str] | None = None  # stage names (pipelines); default [family]
    problems: list[str] | None = None  # complete problem texts (pipelines), instead of `what`
    remarks: list[str] = field(default_factory=lambda: ["Direct implementation."])
    min_distinct: int = 3  # the ten expected values must take at least this many values
    # wrong implementations the asserts must reject (a pipeline stage dropped): an instance
    # whose inputs cannot separate one is discarded
    near_misses: list[Callable[..., Any]] = field(default_factory=list)
    # a constant moved by one: separated when a separating input is found among a few hundred
    # random ones (else the tweak is taken as equivalent on the input distribution)
    tweaks: list[Callable[..., Any]] = field(default_factory=list)
    # identifiers the bodies use, when the builder knows them (else parsed from the bodies)
    reserved: frozenset[str] | None = None


Builder = Callable[[Random], Task]


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # pipeline | string | list | number | dict
    summary: str
    build: Builder
    verbs: tuple[str, ...] = ()  # verbs that suit the task, mixed into function names


FAMILIES: dict[str, Family] = {}


def family(name: str, kind: str, summary: str, verbs: str = "") -> Callable[[Builder], Builder]:
    def register(build: Builder) -> Builder:
        if name in FAMILIES:
            raise ValueError(f"toy family {name!r} registered twice")
        FAMILIES[name] = Family(name, kind, summary, build, tuple(verbs.split()))
        return build

    return register


def fill(text: str, **names: str) -> str:
    return string.Template(text).substitute(names)


@lru_cache(maxsize=4096)
def names_in(template: str) -> frozenset[str]:
    """Every identifier a code template binds or reads (so argument names can avoid them)."""
    code = string.Template(template).safe_substitute(a="_a_", b="_b_", fn="_fn_")
    tree = ast.parse(code)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
        elif isinstance(node, ast.alias):
            found.add(node.asname or node.name)
    return frozenset(found)


def body(text: str) -> str:
    """Dedent a triple-quoted body written inside a builder."""
    lines = text.strip("\n").split("\n")
    indent = min(len(ln) - len(ln.lstrip()) for ln in lines if ln.strip())
    return "\n".join(ln[indent:] for ln in lines)


def pick(rng: Random, options: list[Any] | tuple[Any, ...]) -> Any:
    return options[rng.randrange(len(options))]


def cmp_text(op: str, c: object) -> list[str]:
    """Wordings of `x <op> c`."""
    return {
        ">": [f"greater than {c}", f"larger than {c}", f"above {c}"],
        ">=": [f"at least {c}", f"greater than or equal to {c}", f"not below {c}"],
        "<": [f"less than {c}", f"smaller than {c}", f"below {c}"],
        "<=": [f"at most {c}", f"less than or equal to {c}", f"not above {c}"],
        "==": [f"equal to {c}", f"exactly {c}"],
        "!=": [f"different from {c}", f"not equal to {c}"],
    }[op]


CMP = {
    ">": lambda x, c: x > c,
    ">=": lambda x, c: x >= c,
    "<": lambda x, c: x < c,
    "<=": lambda x, c: x <= c,
    "==": lambda x, c: x == c,
    "!=": lambda x, c: x != c,
}

# ---------------------------------------------------------------------------------------------
# random inputs

LEXICON = (
    "cat dog sun moon tree leaf rock sand wave fire ice snow rain wind star sky road map pen "
    "cup box key door lamp book ship car bus bike fish bird frog bee ant owl fox wolf bear "
    "apple plum pear kiwi lime fig date corn rice bean salt gold iron tin zinc red blue green "
    "pink gray black white sea bay hill lake pond reef dune cave nest hive barn mill tower "
    "banana orange window garden rocket planet silver puzzle castle dragon forest island marble "
    "pepper ribbon tunnel violet yellow mountain elephant go up on ox at be in to we no"
).split()


def rand_ints(
    rng: Random, lo: int = -10, hi: int = 30, n_min: int = 0, n_max: int = 8
) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(rng.randint(n_min, n_max))]


def rand_words(rng: Random, n_min: int = 0, n_max: int = 7, vocab: int = 0) -> list[str]:
    """Words from the lexicon; `vocab` > 0 limits the choice to that many words (repeats)."""
    pool = LEXICON
    if vocab:
        start = rng.randrange(len(LEXICON) - vocab)
        pool = LEXICON[start : start + vocab]
    return [rng.choice(pool) for _ in range(rng.randint(n_min, n_max))]


def rand_text(rng: Random, alphabet: str, n_min: int = 0, n_max: int = 14) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(n_min, n_max)))


def rand_sentence(rng: Random, n_min: int = 0, n_max: int = 6, caps: float = 0.0) -> str:
    words = rand_words(rng, n_min, n_max)
    return " ".join(w.capitalize() if rng.random() < caps else w for w in words)
