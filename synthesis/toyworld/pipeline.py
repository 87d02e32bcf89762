"""Composed list pipelines: 1-3 list stages, then a terminal (the families `pipe_<terminal>`).

    keep x > 3  ->  multiply by 2  ->  sum           (family pipe_sum, depth 2, "medium")

`STAGES` maps a stage kind to a builder `rng -> Stage`; `TERMINALS` maps a terminal kind to a
builder `rng -> Terminal`. Each terminal is one family (`pipe_sum`, `pipe_max`, ...); the
stages in front of it, their order and their constants are that family's parameters, so one
family holds thousands of pipeline types. The prototype (docs/TOYWORLD.md) found that single
operations saturate while composed pipelines separate the training formats.

Code is rendered in three styles from the same plan: `loop` (explicit for-loops where a stage
has one), `comp` (comprehensions and slices) and `builtin` (filter/map/itertools/dict.fromkeys).
Every stage also yields *near misses* — the pipeline without that stage, or with its constant
moved by one — and the world keeps an instance only if its ten asserts tell every near miss
from the reference, so a plan that copies a wrong constant fails its tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate, takewhile
from random import Random
from typing import Any

from synthesis.toyworld.core import CMP, INTS, Task, cmp_text, family, pick

ListFn = Callable[[list[int]], list[int]]
Expr = Callable[[str, str], str]  # (source variable, loop variable) -> expression
Loop = Callable[[str, str, str], list[str]]  # (source, destination, loop variable) -> lines


@dataclass
class Stage:
    kind: str
    params: dict[str, Any]
    phrases: list[str]  # imperative, lowercase; VALS / VAL stand for the item noun
    steps: list[str]  # CoT wordings (sentences) that state the constants
    fn: ListFn
    comp: Expr
    builtin: Expr | None = None
    loop: Loop | None = None
    names: tuple[str, ...] = ("result",)  # names for the variable holding this stage's output
    consts: list[str] = field(default_factory=list)
    word: str = ""  # short label: "filter", "scale", ...
    tweaks: list[ListFn] = field(default_factory=list)  # the stage with a constant moved by one
    order_only: bool = False  # only reorders: pointless before an order-blind terminal
    length_kept: bool = False  # output as long as input: pointless right before `count`
    positional: bool = False  # result depends on positions (slices, prefixes, differences)
    imports: tuple[str, ...] = ()


@dataclass
class Terminal:
    kind: str
    params: dict[str, Any]
    returns: str
    nouns: list[str]  # "the sum of the remaining VALS (0 if none remain)"
    steps: list[str]
    fn: Callable[[list[int]], Any]
    code: Callable[[str, str, str], list[str]]  # (source, loop variable, style) -> lines
    consts: list[str] = field(default_factory=list)
    word: str = ""
    tweaks: list[Callable[[list[int]], Any]] = field(default_factory=list)
    order_blind: bool = False  # result ignores order (sum, len, max, ...)


NEG = {">": "<=", ">=": "<", "<": ">=", "<=": ">", "!=": "==", "==": "!="}


def _const(rng: Random, lo: int, hi: int, exclude: tuple[int, ...] = ()) -> int:
    while True:
        c = rng.randint(lo, hi)
        if c not in exclude:
            return c


def _filter_loop(cond: Callable[[str], str]) -> Loop:
    return lambda s, d, x: [
        f"{d} = []",
        f"for {x} in {s}:",
        f"    if {cond(x)}:",
        f"        {d}.append({x})",
    ]


def _map_loop(expr: Callable[[str], str]) -> Loop:
    return lambda s, d, x: [f"{d} = []", f"for {x} in {s}:", f"    {d}.append({expr(x)})"]


def _filter_stage(kind: str, params: dict, phrases: list[str], steps: list[str],
                  cond: Callable[[str], str], make: Callable[..., Callable[[int], bool]],
                  args: tuple, tweak_args: list[tuple], consts: list[str]) -> Stage:  # fmt: skip
    """A stage that keeps the items satisfying `cond` (code) / `make(*args)` (reference)."""

    def keep(*a: Any) -> ListFn:
        pred = make(*a)
        return lambda xs: [x for x in xs if pred(x)]

    return Stage(
        kind, params, phrases, steps, keep(*args),
        comp=lambda s, x: f"[{x} for {x} in {s} if {cond(x)}]",
        builtin=lambda s, x: f"list(filter(lambda {x}: {cond(x)}, {s}))",
        loop=_filter_loop(cond),
        names=("kept", "filtered", "selected", "chosen", "passing", "picked"),
        consts=consts, word="filter", tweaks=[keep(*t) for t in tweak_args],
    )  # fmt: skip


def _map_stage(kind: str, params: dict, phrases: list[str], steps: list[str],
               expr: Callable[[str], str], make: Callable[..., Callable[[int], int]],
               args: tuple, tweak_args: list[tuple], consts: list[str], word: str,
               names: tuple[str, ...], builtin_fn: str | None = None) -> Stage:  # fmt: skip
    def apply(*a: Any) -> ListFn:
        f = make(*a)
        return lambda xs: [f(x) for x in xs]

    def builtin(s: str, x: str) -> str:
        return (
            f"list(map({builtin_fn}, {s}))"
            if builtin_fn
            else f"list(map(lambda {x}: {expr(x)}, {s}))"
        )

    return Stage(
        kind, params, phrases, steps, apply(*args),
        comp=lambda s, x: f"[{expr(x)} for {x} in {s}]",
        builtin=builtin, loop=_map_loop(expr), names=names, consts=consts, word=word,
        length_kept=True,
        tweaks=[apply(*t) for t in tweak_args],
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# stages


def st_keep_cmp(rng: Random) -> Stage:
    op = pick(rng, [">", ">=", "<", "<=", "!="])
    c = rng.randint(-3, 20)
    phrases = [f"keep only the VALS {t}" for t in cmp_text(op, c)]
    phrases += [f"remove every VAL {t}" for t in cmp_text(NEG[op], c)]
    steps = [
        f"Keep only the VALS x with x {op} {c}.",
        f"Filter: a VAL stays if it is {cmp_text(op, c)[0]} (x {op} {c}).",
        f"Drop each VAL that is {cmp_text(NEG[op], c)[0]}; keep x {op} {c}.",
        f"Select the VALS satisfying x {op} {c}.",
    ]
    return _filter_stage(
        "keep_cmp", {"op": op, "c": c}, phrases, steps, lambda x: f"{x} {op} {c}",
        lambda cc: lambda x: CMP[op](x, cc), (c,), [(c + 1,), (c - 1,)], [str(c)],
    )  # fmt: skip


def st_keep_parity(rng: Random) -> Stage:
    even = rng.random() < 0.5
    word, rem = ("even", 0) if even else ("odd", 1)
    phrases = [f"keep only the {word} VALS", f"remove the {'odd' if even else 'even'} VALS"]
    steps = [
        f"Keep the {word} VALS, those with x % 2 == {rem}.",
        f"Filter on parity: x % 2 == {rem} means {word}.",
        f"Throw away every {'odd' if even else 'even'} VAL.",
    ]
    return _filter_stage(
        "keep_parity", {"rem": rem}, phrases, steps, lambda x: f"{x} % 2 == {rem}",
        lambda r: lambda x: x % 2 == r, (rem,), [(1 - rem,)], [],
    )  # fmt: skip


def st_keep_mod(rng: Random) -> Stage:
    k = rng.randint(3, 7)
    r = rng.randrange(k) if rng.random() < 0.5 else 0
    if r == 0:
        phrases = [f"keep only the multiples of {k}", f"keep the VALS divisible by {k}"]
        steps = [
            f"Keep the multiples of {k}: x % {k} == 0.",
            f"A VAL stays when it is divisible by {k} (x % {k} == 0).",
            f"Filter with x % {k} == 0.",
        ]
    else:
        phrases = [
            f"keep only the VALS whose remainder modulo {k} is {r}",
            f"keep the VALS x with x % {k} == {r}",
        ]
        steps = [
            f"Keep x when x % {k} == {r}.",
            f"A VAL stays if dividing it by {k} leaves remainder {r}.",
            f"Filter with the test x % {k} == {r}.",
        ]
    return _filter_stage(
        "keep_mod", {"k": k, "r": r}, phrases, steps, lambda x: f"{x} % {k} == {r}",
        lambda kk: lambda x: x % kk == r, (k,), [(k + 1,), (k - 1,)], [str(k), str(r)] if r else [str(k)],
    )  # fmt: skip


def st_keep_range(rng: Random) -> Stage:
    lo = rng.randint(-5, 12)
    hi = lo + rng.randint(3, 15)
    phrases = [
        f"keep only the VALS between {lo} and {hi} inclusive",
        f"keep the VALS in the range {lo}..{hi} (both ends included)",
        f"remove the VALS outside the closed range [{lo}, {hi}]",
    ]
    steps = [
        f"Keep x with {lo} <= x <= {hi}.",
        f"Only VALS inside [{lo}, {hi}] survive; both bounds count.",
        f"Filter to the closed range from {lo} to {hi}.",
    ]
    return _filter_stage(
        "keep_range", {"lo": lo, "hi": hi}, phrases, steps, lambda x: f"{lo} <= {x} <= {hi}",
        lambda a, b: lambda x: a <= x <= b, (lo, hi), [(lo + 1, hi), (lo, hi - 1)],
        [str(lo), str(hi)],
    )  # fmt: skip


def st_add(rng: Random) -> Stage:
    c = _const(rng, -9, 15, exclude=(0,))
    if c > 0:
        phrases = [
            f"add {c} to each VAL",
            f"increase every VAL by {c}",
            f"shift each VAL up by {c}",
        ]
        steps = [
            f"Add {c} to every VAL.",
            f"Shift: x becomes x + {c}.",
            f"Increase each VAL by {c}.",
        ]
        expr = lambda x: f"{x} + {c}"  # noqa: E731
    else:
        phrases = [f"subtract {-c} from each VAL", f"decrease every VAL by {-c}"]
        steps = [
            f"Subtract {-c} from every VAL.",
            f"Shift: x becomes x - {-c}.",
            f"Lower each VAL by {-c}.",
        ]
        expr = lambda x: f"{x} - {-c}"  # noqa: E731
    return _map_stage(
        "add", {"c": c}, phrases, steps, expr, lambda cc: lambda x: x + cc, (c,),
        [(c + 1,), (c - 1,)], [str(abs(c))], "shift", ("shifted", "moved", "offset_vals", "adjusted"),
    )  # fmt: skip


def st_mul(rng: Random) -> Stage:
    c = pick(rng, [2, 3, 4, 5, 6, 7, -2, -3])
    phrases = [f"multiply each VAL by {c}", f"scale every VAL by a factor of {c}"]
    steps = [
        f"Multiply every VAL by {c}.",
        f"Scale: x becomes x * {c}.",
        f"Each VAL is replaced by {c} times itself.",
    ]
    return _map_stage(
        "mul", {"c": c}, phrases, steps, lambda x: f"{x} * {c}", lambda cc: lambda x: x * cc,
        (c,), [(c + 1,), (c - 1,)], [str(c)], "scale", ("scaled", "multiplied", "times", "grown"),
    )  # fmt: skip


def st_square(rng: Random) -> Stage:
    phrases = ["square each VAL", "replace every VAL by its square"]
    steps = ["Square every VAL (x * x).", "Each VAL becomes its square.", "Map x to x ** 2."]
    expr = pick(rng, [lambda x: f"{x} * {x}", lambda x: f"{x} ** 2"])
    return _map_stage(
        "square", {}, phrases, steps, expr, lambda: lambda x: x * x, (), [], [], "square",
        ("squares", "squared", "powers"),
    )  # fmt: skip


def st_abs(rng: Random) -> Stage:
    phrases = ["take the absolute value of each VAL", "make every VAL non-negative with abs"]
    steps = [
        "Replace each VAL by its absolute value.",
        "Apply abs to every VAL.",
        "Drop the signs: x becomes abs(x).",
    ]
    return _map_stage(
        "abs", {}, phrases, steps, lambda x: f"abs({x})", lambda: abs, (), [], [], "abs",
        ("magnitudes", "absolute", "unsigned"), builtin_fn="abs",
    )  # fmt: skip


def _divide(rng: Random, floor: bool) -> Stage:
    """`x // k` (floordiv) or `x % k` (mod): the same stage shape with another operator."""
    k = rng.randint(2, 5) if floor else rng.randint(2, 9)
    op = "//" if floor else "%"
    if floor:
        phrases = [f"floor-divide each VAL by {k}", f"replace every VAL by VAL // {k}"]
        steps = [f"Integer-divide every VAL by {k} with //, rounding down.",
                 f"Each VAL becomes its floor quotient by {k}."]  # fmt: skip
        names = ("halves", "quotients", "divided", "shrunk")
    else:
        phrases = [f"replace each VAL by its remainder modulo {k}", f"reduce every VAL modulo {k}"]
        steps = [f"Take every VAL modulo {k} (Python's %, so results are in 0..{k - 1}).",
                 f"Each VAL becomes its remainder after division by {k}."]  # fmt: skip
        names = ("remainders", "residues", "reduced")
    steps.append(f"Map x to x {op} {k}.")

    def make(kk: int) -> Callable[[int], int]:
        return (lambda x: x // kk) if floor else (lambda x: x % kk)

    return _map_stage(
        "floordiv" if floor else "mod", {"k": k}, phrases, steps, lambda x: f"{x} {op} {k}", make,
        (k,), [(k + 1,), (k - 1,)] if k > 2 else [(k + 1,)], [str(k)], "divide" if floor else "mod",
        names,
    )  # fmt: skip


def st_mod(rng: Random) -> Stage:
    return _divide(rng, floor=False)


def st_floordiv(rng: Random) -> Stage:
    return _divide(rng, floor=True)


def st_clamp(rng: Random) -> Stage:
    mode = pick(rng, ["both", "cap", "floor"])
    lo = rng.randint(-5, 8)
    hi = lo + rng.randint(4, 15)
    if mode == "both":
        phrases = [
            f"clamp each VAL into the range [{lo}, {hi}]",
            f"limit every VAL to lie between {lo} and {hi}",
        ]
        steps = [f"Clamp each VAL to [{lo}, {hi}]: below {lo} becomes {lo}, above {hi} becomes {hi}.",
                 f"Apply min(max(x, {lo}), {hi}) to every VAL.",
                 f"Bound every VAL: at least {lo}, at most {hi}."]  # fmt: skip
        expr = lambda x: f"min(max({x}, {lo}), {hi})"  # noqa: E731
        make = lambda a, b: lambda x: min(max(x, a), b)  # noqa: E731
        args, tweaks, consts = (lo, hi), [(lo + 1, hi), (lo, hi - 1)], [str(lo), str(hi)]
    elif mode == "cap":
        phrases = [f"cap every VAL at {hi}", f"replace each VAL above {hi} by {hi}"]
        steps = [f"Cap at {hi}: x becomes min(x, {hi}).", f"Any VAL larger than {hi} is set to {hi}.",
                 f"Apply min(x, {hi}) to each VAL."]  # fmt: skip
        expr = lambda x: f"min({x}, {hi})"  # noqa: E731
        make = lambda a, b: lambda x: min(x, b)  # noqa: E731
        args, tweaks, consts = (lo, hi), [(lo, hi - 1), (lo, hi + 1)], [str(hi)]
    else:
        phrases = [
            f"raise every VAL below {lo} up to {lo}",
            f"replace each VAL smaller than {lo} by {lo}",
        ]
        steps = [f"Floor at {lo}: x becomes max(x, {lo}).", f"Any VAL under {lo} is set to {lo}.",
                 f"Apply max(x, {lo}) to each VAL."]  # fmt: skip
        expr = lambda x: f"max({x}, {lo})"  # noqa: E731
        make = lambda a, b: lambda x: max(x, a)  # noqa: E731
        args, tweaks, consts = (lo, hi), [(lo + 1, hi), (lo - 1, hi)], [str(lo)]
    params = (
        {"mode": mode, "lo": lo, "hi": hi}
        if mode == "both"
        else {"mode": mode, "c": hi if mode == "cap" else lo}
    )
    return _map_stage(
        "clamp", params, phrases, steps, expr, make, args, tweaks, consts, "clamp",
        ("clamped", "bounded", "capped", "limited"),
    )  # fmt: skip


def _dedupe(xs: list[int]) -> list[int]:
    return list(dict.fromkeys(xs))


def st_dedupe(rng: Random) -> Stage:
    phrases = ["remove duplicates, keeping the first occurrence of each VAL",
               "drop repeated VALS (keep each VAL's first appearance, in order)"]  # fmt: skip
    steps = ["Remove duplicates while keeping the original order of first occurrences.",
             "Deduplicate: keep a VAL only the first time it appears.",
             "Track the VALS already seen and skip repeats."]  # fmt: skip

    def loop(s: str, d: str, x: str) -> list[str]:
        return [
            f"{d} = []",
            f"for {x} in {s}:",
            f"    if {x} not in {d}:",
            f"        {d}.append({x})",
        ]

    return Stage(
        "dedupe", {}, phrases, steps, _dedupe,
        comp=lambda s, x: f"[{x} for i, {x} in enumerate({s}) if {x} not in {s}[:i]]",
        builtin=lambda s, x: f"list(dict.fromkeys({s}))", loop=loop,
        names=("unique", "distinct", "deduped", "uniq"), word="dedupe",
    )  # fmt: skip


def st_prefix(rng: Random) -> Stage:
    use_max = rng.random() < 0.35
    if use_max:
        phrases = ["replace the list by its running maximum", "turn the list into running maxima"]
        steps = ["Compute the running maximum: position i holds the largest of the first i + 1 VALS.",
                 "Prefix maxima: keep the best value so far at each step.",
                 "Walk left to right, recording the maximum seen so far."]  # fmt: skip

        def loop(s: str, d: str, x: str) -> list[str]:
            return [f"{d} = []", f"for {x} in {s}:",
                    f"    {d}.append({x} if not {d} or {x} > {d}[-1] else {d}[-1])"]  # fmt: skip

        return Stage(
            "running_max", {}, phrases, steps, lambda xs: list(accumulate(xs, max)),
            comp=lambda s, x: f"[max({s}[:i + 1]) for i in range(len({s}))]",
            builtin=lambda s, x: f"list(accumulate({s}, max))", loop=loop,
            names=("best_so_far", "peaks", "highs", "maxima"), positional=True, word="running max", length_kept=True,
            imports=("from itertools import accumulate",),
        )  # fmt: skip
    phrases = ["replace the list by its running totals", "turn the list into prefix sums"]
    steps = ["Compute running totals: position i holds the sum of the first i + 1 VALS.",
             "Prefix sums: keep an accumulator and record it after each VAL.",
             "Walk left to right, adding each VAL to a running sum and recording it."]  # fmt: skip

    def loop_sum(s: str, d: str, x: str) -> list[str]:
        return [
            "acc = 0",
            f"{d} = []",
            f"for {x} in {s}:",
            f"    acc += {x}",
            f"    {d}.append(acc)",
        ]

    return Stage(
        "running_total", {}, phrases, steps, lambda xs: list(accumulate(xs)),
        comp=lambda s, x: f"[sum({s}[:i + 1]) for i in range(len({s}))]",
        builtin=lambda s, x: f"list(accumulate({s}))", loop=loop_sum,
        names=("totals", "prefix", "running", "sums"), positional=True, word="prefix sums", length_kept=True,
        imports=("from itertools import accumulate",),
    )  # fmt: skip


def st_slice(rng: Random) -> Stage:
    mode = pick(rng, ["take", "drop", "last"])
    k = rng.randint(1, 4)
    if mode == "take":
        phrases = [f"keep only the first {k} VALS", f"truncate the list to its first {k} VALS"]
        steps = [f"Keep the first {k} VALS (fewer if the list is shorter).",
                 f"Slice off everything after position {k}: [:{k}].",
                 f"Take the leading {k} VALS."]  # fmt: skip
        expr = f"[:{k}]"
        make = lambda kk: lambda xs: xs[:kk]  # noqa: E731
    elif mode == "drop":
        phrases = [f"drop the first {k} VALS", f"skip the first {k} VALS"]
        steps = [f"Drop the first {k} VALS (all of them if there are fewer).",
                 f"Slice [{k}:] to skip the first {k}.",
                 f"Discard the leading {k} VALS."]  # fmt: skip
        expr = f"[{k}:]"
        make = lambda kk: lambda xs: xs[kk:]  # noqa: E731
    else:
        phrases = [f"keep only the last {k} VALS", f"keep the final {k} VALS"]
        steps = [f"Keep the last {k} VALS (the whole list if shorter).",
                 f"Slice [-{k}:] to keep the tail of length {k}.",
                 f"Take the trailing {k} VALS."]  # fmt: skip
        expr = f"[-{k}:]"
        make = lambda kk: lambda xs: xs[-kk:]  # noqa: E731
    tweaks = [make(k + 1)] + ([make(k - 1)] if k > 1 else [])
    return Stage(
        "slice", {"mode": mode, "k": k}, phrases, steps, make(k),
        comp=lambda s, x: f"{s}{expr}", names=("head", "part", "window", "sliced", "piece"), positional=True,
        consts=[str(k)], word=mode, tweaks=tweaks,
    )  # fmt: skip


def st_sort(rng: Random) -> Stage:
    key = pick(rng, [None, None, "abs", "mod", "last_digit"])
    desc = rng.random() < 0.4
    k = rng.randint(3, 6) if key == "mod" else None
    order = "descending" if desc else "ascending"
    rev = ", reverse=True" if desc else ""
    consts: list[str] = []
    if key is None:
        phrases = [
            f"sort the VALS in {order} order",
            f"sort the list {'from largest to smallest' if desc else 'from smallest to largest'}",
        ]
        steps = [f"Sort in {order} order.", f"Order the VALS {'high to low' if desc else 'low to high'}.",
                 f"Use sorted(){' with reverse=True' if desc else ''}."]  # fmt: skip
        code = lambda s, x: f"sorted({s}{rev})"  # noqa: E731
        fn = lambda xs: sorted(xs, reverse=desc)  # noqa: E731
    else:
        keytext = {
            "abs": "absolute value",
            "mod": f"remainder modulo {k}",
            "last_digit": "last digit (of the absolute value)",
        }[key]
        keyexpr = {"abs": "abs({x})", "mod": f"{{x}} % {k}", "last_digit": "abs({x}) % 10"}[key]
        kf = {"abs": abs, "mod": lambda x: x % k, "last_digit": lambda x: abs(x) % 10}[key]
        phrases = [f"sort the VALS by their {keytext} in {order} order, keeping ties in their original order",
                   f"stable-sort the VALS by {keytext}, {order}"]  # fmt: skip
        steps = [f"Sort by the key {keyexpr.format(x='x')}, {order}; Python's sort is stable so ties keep their order.",
                 f"Order the VALS by {keytext} ({order}), ties unchanged.",
                 f"Use sorted with key=lambda x: {keyexpr.format(x='x')}{' and reverse=True' if desc else ''}."]  # fmt: skip
        code = lambda s, x: f"sorted({s}, key=lambda {x}: {keyexpr.format(x=x)}{rev})"  # noqa: E731
        fn = lambda xs: sorted(xs, key=kf, reverse=desc)  # noqa: E731
        consts = [str(k)] if k else []
    return Stage(
        "sort", {"key": key, "k": k, "desc": desc}, phrases, steps, fn, comp=code,
        names=("ordered", "ranked", "sorted_vals", "arranged"), consts=consts, word="sort",
        order_only=True, length_kept=True,
    )  # fmt: skip


def st_reverse(rng: Random) -> Stage:
    phrases = ["reverse the order of the VALS", "reverse the list"]
    steps = [
        "Reverse the list.",
        "Flip the order so the last VAL comes first.",
        "Read the VALS back to front.",
    ]
    return Stage(
        "reverse", {}, phrases, steps, lambda xs: xs[::-1],
        comp=lambda s, x: f"{s}[::-1]", builtin=lambda s, x: f"list(reversed({s}))",
        names=("backwards", "flipped", "reversed_vals"), word="reverse", order_only=True,
        length_kept=True,
    )  # fmt: skip


def st_diffs(rng: Random) -> Stage:
    phrases = ["replace the list by the differences between neighbouring VALS (next minus current)",
               "turn the list into its consecutive differences, each later VAL minus the one before"]  # fmt: skip
    steps = ["Take consecutive differences: item i is x[i + 1] - x[i], one fewer than before.",
             "Pair each VAL with the next one and subtract: next minus current.",
             "Differences of neighbours; a list of length n gives n - 1 values."]  # fmt: skip

    def loop(s: str, d: str, x: str) -> list[str]:
        return [
            f"{d} = []",
            f"for i in range(1, len({s})):",
            f"    {d}.append({s}[i] - {s}[i - 1])",
        ]

    return Stage(
        "diffs", {}, phrases, steps, lambda xs: [b - a for a, b in zip(xs, xs[1:])],
        comp=lambda s, x: f"[{s}[i + 1] - {s}[i] for i in range(len({s}) - 1)]", loop=loop,
        names=("steps", "deltas", "gaps", "changes"), positional=True, word="differences",
    )  # fmt: skip


def st_every(rng: Random) -> Stage:
    k = rng.randint(2, 3)
    r = rng.randrange(k)
    phrases = [
        f"keep one VAL out of every {k}, starting at index {r}",
        f"keep the VALS at positions {r}, {r + k}, {r + 2 * k}, ... (a step of {k})",
    ]
    steps = [f"Keep the VALS whose index i satisfies i % {k} == {r}.", f"Slice with a step: [{r}::{k}].",
             f"Starting from index {r}, take one VAL every {k} positions."]  # fmt: skip
    make = lambda kk, rr: lambda xs: xs[rr::kk]  # noqa: E731
    return Stage(
        "every", {"k": k, "r": r}, phrases, steps, make(k, r),
        comp=lambda s, x: f"{s}[{r}::{k}]",
        builtin=lambda s, x: f"[{x} for i, {x} in enumerate({s}) if i % {k} == {r}]",
        names=("sampled", "strided", "picked_out", "thinned"), positional=True, consts=[str(k), str(r)],
        word="stride", tweaks=[make(k + 1, r), make(k, (r + 1) % k)],
    )  # fmt: skip


def st_take_while(rng: Random) -> Stage:
    op = pick(rng, ["<", ">", "!="])
    c = rng.randint(0, 20)
    phrases = [f"keep the leading VALS while they are {cmp_text(op, c)[0]}, stopping at the first one that is not",
               f"take VALS from the front as long as each is {cmp_text(op, c)[0]}"]  # fmt: skip
    steps = [f"Scan from the front and stop at the first VAL that fails x {op} {c}; keep what came before.",
             f"Take the longest prefix whose VALS all satisfy x {op} {c}.",
             f"Keep VALS while x {op} {c}, then stop."]  # fmt: skip

    def loop(s: str, d: str, x: str) -> list[str]:
        return [
            f"{d} = []",
            f"for {x} in {s}:",
            f"    if not {x} {op} {c}:",
            "        break",
            f"    {d}.append({x})",
        ]

    make = lambda cc: lambda xs: list(takewhile(lambda x: CMP[op](x, cc), xs))  # noqa: E731
    return Stage(
        "take_while", {"op": op, "c": c}, phrases, steps, make(c),
        comp=lambda s, x: f"list(takewhile(lambda {x}: {x} {op} {c}, {s}))",
        loop=loop, names=("prefix_part", "leading", "run", "front"), positional=True, consts=[str(c)],
        word="take-while", tweaks=[make(c + 1), make(c - 1)],
        imports=("from itertools import takewhile",),
    )  # fmt: skip


def st_replace(rng: Random) -> Stage:
    a = rng.randint(-2, 10)
    b = _const(rng, -5, 15, exclude=(a,))
    phrases = [f"replace every {a} with {b}", f"change each VAL equal to {a} into {b}"]
    steps = [f"Replace each {a} by {b}; other VALS stay.", f"Map x to {b} if x == {a}, else x.",
             f"Swap occurrences of {a} for {b}."]  # fmt: skip
    make = lambda aa, bb: lambda x: bb if x == aa else x  # noqa: E731
    return _map_stage(
        "replace", {"a": a, "b": b}, phrases, steps, lambda x: f"{b} if {x} == {a} else {x}",
        make, (a, b), [(a + 1, b), (a, b + 1)], [str(a), str(b)], "replace",
        ("replaced", "swapped", "patched", "fixed"),
    )  # fmt: skip


STAGES: dict[str, Callable[[Random], Stage]] = {
    "keep_cmp": st_keep_cmp,
    "keep_parity": st_keep_parity,
    "keep_mod": st_keep_mod,
    "keep_range": st_keep_range,
    "add": st_add,
    "mul": st_mul,
    "square": st_square,
    "abs": st_abs,
    "mod": st_mod,
    "floordiv": st_floordiv,
    "clamp": st_clamp,
    "dedupe": st_dedupe,
    "prefix": st_prefix,
    "slice": st_slice,
    "sort": st_sort,
    "reverse": st_reverse,
    "diffs": st_diffs,
    "every": st_every,
    "take_while": st_take_while,
    "replace": st_replace,
}
# Filters are drawn more often: they make the constants matter and keep outputs varied.
STAGE_WEIGHTS = {name: 2.0 if name.startswith("keep") else 1.0 for name in STAGES}


# ---------------------------------------------------------------------------------------------
# terminals


def t_list(rng: Random) -> Terminal:
    return Terminal(
        "list", {}, "list[int]",
        ["the resulting list", "the list that remains", "the final list", "the transformed list"],
        ["Return the resulting list.", "The list left at the end is the answer.", "Return that list."],
        lambda xs: xs, lambda s, x, style: [f"return {s}"], word="list",
    )  # fmt: skip


def t_sum(rng: Random) -> Terminal:
    def code(s: str, x: str, style: str) -> list[str]:
        if style == "loop":
            return ["total = 0", f"for {x} in {s}:", f"    total += {x}", "return total"]
        return [f"return sum({s})"]

    return Terminal(
        "sum", {}, "int",
        ["the sum of the remaining VALS (0 if none remain)", "the total of what is left, or 0 for an empty list"],
        ["Return the sum; an empty list sums to 0.", "Add up what is left (0 when nothing is left).",
         "Finally sum the VALS; sum([]) is 0."], sum, code, word="sum", order_blind=True,
    )  # fmt: skip


def t_count(rng: Random) -> Terminal:
    def code(s: str, x: str, style: str) -> list[str]:
        if style == "loop":
            return ["count = 0", f"for _ in {s}:", "    count += 1", "return count"]
        return [f"return len({s})"]

    return Terminal(
        "count", {}, "int", ["how many VALS remain", "the number of VALS left at the end"],
        ["Return how many VALS are left.", "Count the remaining VALS with len.", "The answer is the length of the list."],
        len, code, word="count", order_blind=True,
    )  # fmt: skip


def _extreme(rng: Random, big: bool) -> Terminal:
    d = pick(rng, [0, -1, 0, None])
    fname, word = ("max", "largest") if big else ("min", "smallest")
    better = ">" if big else "<"
    dtext = repr(d)

    def code(s: str, x: str, style: str) -> list[str]:
        if style == "loop":
            return [f"if not {s}:", f"    return {dtext}", f"best = {s}[0]", f"for {x} in {s}[1:]:",
                    f"    if {x} {better} best:", f"        best = {x}", "return best"]  # fmt: skip
        if style == "builtin" and d is not None:
            return [f"return {fname}({s}, default={dtext})"]
        return [f"return {fname}({s}) if {s} else {dtext}"]

    def make(dd: int | None) -> Callable[[list[int]], Any]:
        f = max if big else min
        return lambda xs: f(xs) if xs else dd

    return Terminal(
        fname, {"default": d}, "int" if d is not None else "int | None",
        [f"the {word} remaining VAL, or {dtext} if none remain", f"the {word} VAL left ({dtext} for an empty list)"],
        [f"Return the {word} VAL, or {dtext} when the list is empty.",
         f"Take the {fname}imum; if nothing is left, return {dtext}.",
         f"The answer is {fname}(...) with {dtext} for an empty list."],
        make(d), code, consts=[dtext], word=fname, order_blind=True,
        tweaks=[make(1 if d is None else d + 1)],
    )  # fmt: skip


def t_max(rng: Random) -> Terminal:
    return _extreme(rng, True)


def t_min(rng: Random) -> Terminal:
    return _extreme(rng, False)


def t_spread(rng: Random) -> Terminal:
    def code(s: str, x: str, style: str) -> list[str]:
        if style == "loop":
            return [f"if not {s}:", "    return 0", f"lo = hi = {s}[0]", f"for {x} in {s}:",
                    f"    lo = min(lo, {x})", f"    hi = max(hi, {x})", "return hi - lo"]  # fmt: skip
        return [f"return max({s}) - min({s}) if {s} else 0"]

    return Terminal(
        "spread", {}, "int",
        ["the largest remaining VAL minus the smallest (0 if none remain)", "the spread max - min of what is left, or 0 for an empty list"],
        ["Return max minus min of what is left, or 0 for an empty list.",
         "The spread is the largest VAL minus the smallest; an empty list gives 0.",
         "Compute max(...) - min(...), guarding the empty case with 0."],
        lambda xs: max(xs) - min(xs) if xs else 0, code, word="spread", order_blind=True,
    )  # fmt: skip


def t_join(rng: Random) -> Terminal:
    sep = pick(rng, [",", "-", " ", "|", ";", ", ", ":", "/"])
    st = repr(sep)

    def code(s: str, x: str, style: str) -> list[str]:
        if style == "builtin":
            return [f"return {st}.join(map(str, {s}))"]
        return [f"return {st}.join(str({x}) for {x} in {s})"]

    return Terminal(
        "join", {"sep": sep}, "str",
        [f"the remaining VALS as text, joined by {st}", f"a string of the VALS left, separated by {st}"],
        [f"Convert each VAL to str and join with {st}.", f"Join the VALS with the separator {st}; an empty list gives ''.",
         f"Return {st}.join of the VALS as strings."],
        lambda xs: sep.join(map(str, xs)), code, consts=[st], word="join",
    )  # fmt: skip


def _end(rng: Random, first: bool) -> Terminal:
    d = pick(rng, [-1, 0, None])
    dtext = repr(d)
    idx, word = ("0", "first") if first else ("-1", "last")

    def code(s: str, x: str, style: str) -> list[str]:
        if style == "loop":
            return [f"if not {s}:", f"    return {dtext}", f"return {s}[{idx}]"]
        return [f"return {s}[{idx}] if {s} else {dtext}"]

    def make(dd: int | None) -> Callable[[list[int]], Any]:
        return lambda xs: xs[int(idx)] if xs else dd

    return Terminal(
        word, {"default": d}, "int" if d is not None else "int | None",
        [f"the {word} remaining VAL, or {dtext} if none remain", f"the {word} VAL that is left ({dtext} if the list ends up empty)"],
        [f"Return the {word} VAL, or {dtext} if the list is empty.", f"Pick element [{idx}] when there is one; otherwise {dtext}.",
         f"Answer with the {word} VAL left, defaulting to {dtext}."],
        make(d), code, consts=[dtext], word=word, tweaks=[make(1 if d is None else d + 1)],
    )  # fmt: skip


def t_first(rng: Random) -> Terminal:
    return _end(rng, True)


def t_last(rng: Random) -> Terminal:
    return _end(rng, False)


def _quantified(rng: Random, every: bool) -> Terminal:
    op = pick(rng, [">", ">=", "<", "<="])
    c = rng.randint(0, 20)
    cond = cmp_text(op, c)[0]
    fname = "all" if every else "any"

    def code(s: str, x: str, style: str) -> list[str]:
        if style == "loop":
            if every:
                return [
                    f"for {x} in {s}:",
                    f"    if not {x} {op} {c}:",
                    "        return False",
                    "return True",
                ]
            return [
                f"for {x} in {s}:",
                f"    if {x} {op} {c}:",
                "        return True",
                "return False",
            ]
        return [f"return {fname}({x} {op} {c} for {x} in {s})"]

    def make(cc: int) -> Callable[[list[int]], bool]:
        agg = all if every else any
        return lambda xs: agg(CMP[op](x, cc) for x in xs)

    if every:
        nouns = [f"whether every remaining VAL is {cond} (True for an empty list)",
                 f"True if all VALS left are {cond}, else False (an empty list gives True)"]  # fmt: skip
        steps = [f"Return True exactly when every VAL satisfies x {op} {c}; all() of nothing is True.",
                 f"Check x {op} {c} for all VALS left; an empty list passes.",
                 f"Answer with all(x {op} {c}) over the VALS."]  # fmt: skip
    else:
        nouns = [f"whether any remaining VAL is {cond} (False for an empty list)",
                 f"True if at least one VAL left is {cond}, else False"]  # fmt: skip
        steps = [f"Return True if some VAL satisfies x {op} {c}; an empty list gives False.",
                 f"Check whether any VAL left has x {op} {c}.",
                 f"Answer with any(x {op} {c}) over the VALS."]  # fmt: skip
    return Terminal(
        fname, {"op": op, "c": c}, "bool", nouns, steps, make(c), code, consts=[str(c)],
        word=fname, tweaks=[make(c + 1), make(c - 1)], order_blind=True,
    )  # fmt: skip


def t_any(rng: Random) -> Terminal:
    return _quantified(rng, False)


def t_all(rng: Random) -> Terminal:
    return _quantified(rng, True)


TERMINALS: dict[str, Callable[[Random], Terminal]] = {
    "list": t_list,
    "sum": t_sum,
    "count": t_count,
    "max": t_max,
    "min": t_min,
    "spread": t_spread,
    "join": t_join,
    "first": t_first,
    "last": t_last,
    "any": t_any,
    "all": t_all,
}
TERMINAL_VERBS = {
    "list": "filter collect build transform select process",
    "sum": "sum total tally add_up accumulate",
    "count": "count tally measure",
    "max": "find get pick",
    "min": "find get pick",
    "spread": "measure compute get",
    "join": "format render join encode",
    "first": "find get pick",
    "last": "find get pick",
    "any": "check has detect",
    "all": "check validate verify",
}


# ---------------------------------------------------------------------------------------------
# composing a pipeline into a Task


def _pointless_reorder(stages: list[Stage], i: int, terminal: Terminal) -> bool:
    """A reordering stage matters only if a positional stage follows before the next sort, or
    the terminal sees order."""
    if not stages[i].order_only:
        return False
    for st in stages[i + 1 :]:
        if st.positional:
            return False
        if st.kind == "sort":
            return True
    return terminal.order_blind


def draw_stages(
    rng: Random, depth: int, terminal: Terminal, kinds_allowed: tuple[str, ...] | None = None
) -> list[Stage]:
    """`depth` stages (of `kinds_allowed`, default all), no kind twice in a row, at most one
    sort, no reordering stage whose order nothing later sees, and no length-keeping stage right
    before `count` (they would not change the answer; the world's near-miss check catches
    subtler cases)."""
    names = list(STAGES) if kinds_allowed is None else list(kinds_allowed)
    weights = [STAGE_WEIGHTS[n] for n in names]
    for _ in range(100):
        kinds = rng.choices(names, weights, k=depth)
        if any(a == b for a, b in zip(kinds, kinds[1:])) or kinds.count("sort") > 1:
            continue
        stages = [STAGES[k](rng) for k in kinds]
        if any(_pointless_reorder(stages, i, terminal) for i in range(depth)):
            continue
        if terminal.kind == "count" and stages[-1].length_kept:
            continue
        return stages
    raise RuntimeError(f"could not draw {depth} compatible stages")


def _chain(phrases: list[str], how: str) -> str:
    if len(phrases) == 1:
        return phrases[0]
    if how == "then":
        return (
            ", then ".join(phrases[:-1])
            + (", and finally " if len(phrases) > 2 else ", then ")
            + phrases[-1]
        )
    if how == "semicolon":
        return "; ".join(phrases)
    return ", ".join(phrases[:-1]) + " and then " + phrases[-1]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


STYLES = ("loop", "comp", "builtin")
ITEM_NOUNS = (("values", "value"), ("numbers", "number"), ("elements", "element"),
              ("items", "item"), ("entries", "entry"), ("integers", "integer"))  # fmt: skip
LOOP_BUDGET = 9  # body lines of loop-style stages; the rest of the body uses expressions
LOOP_VARS = ("x", "v", "n", "item", "val", "num", "value", "e", "elem", "k")
REASSIGN_NAMES = ("result", "out", "cur", "work", "vals", "current", "res")


_ARTICLE = re.compile(r"\b([Aa]) (?=(?:element|item|entry|integer)\b)")


def _nouns(text: str, plural: str, singular: str) -> str:
    """Put the item noun in ("a entry" -> "an entry")."""
    return _ARTICLE.sub(r"\1n ", text.replace("VALS", plural).replace("VAL", singular))


def render_pipeline(
    stages: list[Stage], terminal: Terminal, style: str, rng: Random, reserved: set[str]
) -> str:
    """The function body for one style; `$a` is the input list. Adds the identifiers the body
    may use to `reserved`."""
    x = pick(rng, LOOP_VARS)
    fresh = style == "loop" or rng.random() < 0.6
    shared = pick(rng, REASSIGN_NAMES)
    used = {x, shared, "i", "acc", "best", "total", "count", "lo", "hi", "_"}
    # every name a body of this pipeline could bind, so argument names avoid all of them
    reserved |= used | {imp.split()[-1] for st in stages for imp in st.imports}
    reserved |= {n for st in stages for n in st.names} | {
        f"{st.names[0]}_{i}" for i, st in enumerate(stages)
    }
    lines: list[str] = []
    src = "$a"
    for i, st in enumerate(stages):
        if fresh:
            options = [n for n in st.names if n not in used] or [f"{st.names[0]}_{i}"]
            dst = pick(rng, options)
            used.add(dst)
        else:
            dst = shared
        # loops where they fit: the body stays within LOOP_BUDGET lines
        loop = st.loop(src, dst, x) if style == "loop" and st.loop is not None else None
        if loop is not None and len(lines) + len(loop) <= LOOP_BUDGET:
            lines += loop
        else:
            expr = (st.builtin if style == "builtin" and st.builtin else st.comp)(src, x)
            if i == len(stages) - 1 and terminal.kind == "list":
                return "\n".join([*lines, f"return {expr}"])
            lines.append(f"{dst} = {expr}")
        src = dst
    final = terminal.code(src, x, style)
    if len(lines) + len(final) > LOOP_BUDGET + 3:
        final = terminal.code(src, x, "comp")
    return "\n".join(lines + final)


def build_pipeline(
    rng: Random, terminal_kind: str, depth: int, stages_allowed: tuple[str, ...] | None = None
) -> Task:
    terminal = TERMINALS[terminal_kind](rng)
    stages = draw_stages(rng, depth, terminal, stages_allowed)
    plural, singular = pick(rng, ITEM_NOUNS)
    n = lambda text: _nouns(text, plural, singular)  # noqa: E731
    phrases = [n(pick(rng, st.phrases)) for st in stages]
    term = n(pick(rng, terminal.nouns))
    desc = pick(rng, INTS.descs)
    numbered = "\n".join(f"{i}. {_cap(p)}." for i, p in enumerate(phrases, 1))
    then = _chain(phrases, "then")
    opening = f"First, {then}" if depth > 1 else _cap(then)
    problems = [
        f"Write a function `$sig` that takes {desc} `$a`. {opening}. Return {term}.",
        f"Implement `$fn($a)`: starting from `$a` ({desc}), {_chain(phrases, 'and')}; return {term}.",
        f"Define `$sig`. Apply these steps to `$a` in order:\n{numbered}\nThen return {term}.",
        f"`$fn` takes {desc} `$a`. It should {_chain(phrases, 'semicolon')}. It returns {term}.",
        f"Given {desc} `$a`, {then}. Return {term}. Name the function `$fn`.",
        f"Create a Python function `$fn` with one parameter `$a` ({desc}). Process `$a` like this: "
        f"{_chain(phrases, 'semicolon')}. The function returns {term}.",
    ]
    steps = [[n(s) for s in st.steps] for st in stages] + [[n(s) for s in terminal.steps]]
    empty = repr(terminal.fn([]))  # every stage maps [] to []
    steps.append([f"An empty `$a` gives {empty}.", f"Edge case: [] -> {empty}.",
                  f"Check the empty input: the result is {empty}."])  # fmt: skip
    styles = STYLES
    reserved: set[str] = set()
    bodies = {style: render_pipeline(stages, terminal, style, rng, reserved) for style in styles}
    words = [st.word for st in stages]
    doc = [
        f"{_cap(', '.join(words))}, then {terminal.word}.",
        f"Pipeline: {' -> '.join([*words, terminal.word])}.",
        f"Apply {depth} step{'s' if depth > 1 else ''} to `$a`, then {terminal.word}.",
    ]
    fns = [st.fn for st in stages]

    def run(chain: list[ListFn], final: Callable[[list[int]], Any]) -> Callable[[list[int]], Any]:
        def f(xs: list[int]) -> Any:
            for g in chain:
                xs = g(xs)
            return final(xs)

        return f

    near = [run(fns[:i] + fns[i + 1 :], terminal.fn) for i in range(len(fns))]
    tweaks = [
        run(fns[:i] + [t] + fns[i + 1 :], terminal.fn)
        for i, st in enumerate(stages)
        for t in st.tweaks
    ]
    tweaks += [run(fns, t) for t in terminal.tweaks]
    consts = [c for st in stages for c in st.consts] + terminal.consts
    interesting = sorted({int(c) for c in consts if c.lstrip("-").isdigit()})

    def gen(r: Random) -> tuple:
        rand = r.random
        size = 1 + int(rand() * 8)
        pool = [v + d for v in interesting for d in (-1, 0, 1)]
        if pool:
            xs = [pick(r, pool) if rand() < 0.3 else int(rand() * 41) - 10 for _ in range(size)]
        else:
            xs = [int(rand() * 41) - 10 for _ in range(size)]
        if rand() < 0.2:  # repeats matter for dedupe and replace
            xs += [pick(r, xs) for _ in range(1 + int(rand() * 3))]
        return (xs,)

    imports = tuple(sorted({imp for st in stages for imp in st.imports}))
    remark = [f"{_cap(' + '.join(words))}, then {terminal.word}.", f"{' -> '.join([*words, terminal.word])}",
              "Straight pipeline.", "One pass per stage."]  # fmt: skip
    return Task(
        params={"stages": [[st.kind, st.params] for st in stages], "terminal": [terminal.kind, terminal.params]},
        args=[INTS], returns=terminal.returns, what=[term], steps=steps, bodies=bodies,
        ref=run(fns, terminal.fn), gen=gen, edges=[([],), ([interesting[0] if interesting else 5],)],
        consts=consts, doc=doc, depth=depth, imports=imports,
        stages=[st.kind for st in stages] + [terminal.kind], problems=problems, remarks=remark,
        min_distinct=2 if terminal.returns == "bool" else 3, near_misses=near, tweaks=tweaks,
        reserved=frozenset(reserved),
    )  # fmt: skip


def _register(kind: str) -> None:
    def build(rng: Random, depth: int = 2, stages: tuple[str, ...] | None = None) -> Task:
        return build_pipeline(rng, kind, depth, stages)

    family(
        f"pipe_{kind}", "pipeline",
        f"1-3 list stages (filter/map/clamp/dedupe/prefix/slice/sort/...) then terminal '{kind}'",
        TERMINAL_VERBS[kind],
    )(build)  # fmt: skip


for _kind in TERMINALS:
    _register(_kind)
