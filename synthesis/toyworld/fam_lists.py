"""Standalone toy families over lists of integers and small algorithms."""

from __future__ import annotations

from collections import Counter
from itertools import combinations, zip_longest
from random import Random

from synthesis.toyworld.core import (
    CMP,
    GRID,
    INTS,
    INTS2,
    STR,
    Task,
    body,
    cmp_text,
    family,
    pick,
    rand_ints,
)

ORDINAL = {1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 5: "5th"}


def _pred(rng: Random) -> tuple[dict, str, str, list[str]]:
    """A random integer predicate: (params, code with {x}, wording, consts)."""
    kind = pick(rng, ["cmp", "cmp", "mod", "parity"])
    if kind == "cmp":
        op = pick(rng, [">", ">=", "<", "<=", "=="])
        c = rng.randint(-5, 20)
        return {"op": op, "c": c}, f"{{x}} {op} {c}", cmp_text(op, c)[0], [str(c)]
    if kind == "mod":
        k = rng.randint(3, 7)
        return {"mod": k}, f"{{x}} % {k} == 0", f"divisible by {k}", [str(k)]
    even = rng.random() < 0.5
    return {"even": even}, f"{{x}} % 2 == {0 if even else 1}", "even" if even else "odd", []


def _pred_fn(params: dict, delta: int = 0):
    if "op" in params:
        op, c = params["op"], params["c"] + delta
        return lambda x: CMP[op](x, c)
    if "mod" in params:
        k = params["mod"] + delta
        return lambda x: x % k == 0
    r = 0 if params["even"] else 1
    return lambda x: x % 2 == r


@family(
    "first_index",
    "list",
    "index of the first element satisfying a condition",
    "find locate index search",
)
def first_index(rng: Random) -> Task:
    params, cond, text, consts = _pred(rng)
    default = pick(rng, [-1, -1, None, "len"])
    dtext = "the length of `$a`" if default == "len" else repr(default)
    dcode = "len($a)" if default == "len" else repr(default)
    c = cond.format(x="x")
    what = [f"the index of the first element of `$a` that is {text}, or {dtext} if there is none",
            f"the position of the earliest value in `$a` that is {text} ({dtext} when no value is)"]  # fmt: skip
    steps = [["Walk through `$a` with indices.", "Enumerate `$a` to get (i, x)."],
             [f"Return i at the first x with {c}.", f"Stop at the first value that is {text} ({c})."],
             [f"If the loop finishes, return {dtext}.", f"No match: {dtext}."]]  # fmt: skip

    def make(delta: int):
        pred = _pred_fn(params, delta)

        def ref(xs: list[int]) -> int | None:
            for i, x in enumerate(xs):
                if pred(x):
                    return i
            return len(xs) if default == "len" else default

        return ref

    return Task(
        params={**params, "default": default}, args=[INTS], returns="int" if default is not None else "int | None",
        what=what, steps=steps,
        bodies={
            "loop": body(f"""
                for i, x in enumerate($a):
                    if {c}:
                        return i
                return {dcode}"""),
            "builtin": f"return next((i for i, x in enumerate($a) if {c}), {dcode})",
            "comp": f"hits = [i for i, x in enumerate($a) if {c}]\nreturn hits[0] if hits else {dcode}",
        },
        ref=make(0), gen=lambda r: (rand_ints(r, -10, 25, 1, 8),), edges=[([],)],
        consts=consts + ([repr(default)] if default != "len" else []), doc=["Index of the first match in `$a`.", "Find the first match."],
        tweaks=[make(1), make(-1)] if "even" not in params else [], depth=1,
        remarks=["Linear search.", "enumerate and return early."],
    )  # fmt: skip


@family("kth_largest", "list", "k-th largest (distinct) value with a default", "find pick rank get")
def kth_largest(rng: Random) -> Task:
    k = rng.randint(1, 4)
    distinct = rng.random() < 0.5
    default = pick(rng, [None, 0, -1])
    d = repr(default)
    dup = (
        "distinct value (duplicates count once)"
        if distinct
        else "value (repeated values count separately)"
    )
    what = [f"the {ORDINAL[k]} largest {dup} in `$a`, or {d} if there are fewer than {k}",
            f"the value in position {k} when the {'distinct ' if distinct else ''}values of `$a` are sorted from largest to smallest ({d} if there is no such position)"]  # fmt: skip
    steps = [(["Remove duplicates with set(`$a`).", "Work on the distinct values."] if distinct
              else ["Keep duplicates: each occurrence counts.", "Do not deduplicate."]),
             ["Sort from largest to smallest.", "Sort in descending order."],
             [f"Return the element at index {k - 1} if there are at least {k}, else {d}.",
              f"The answer is the {ORDINAL[k]} one; fewer than {k} values gives {d}."]]  # fmt: skip

    def make(kk: int, dist: bool):
        def ref(xs: list[int]) -> int | None:
            vals = sorted(set(xs) if dist else xs, reverse=True)
            return vals[kk - 1] if len(vals) >= kk else default

        return ref

    src = "set($a)" if distinct else "$a"
    keep = (
        "    if x not in values:\n        values.append(x)" if distinct else "    values.append(x)"
    )
    loop = f"values = []\nfor x in sorted($a, reverse=True):\n{keep}\nif len(values) < {k}:\n    return {d}\nreturn values[{k - 1}]"
    return Task(
        params={"k": k, "distinct": distinct, "default": default}, args=[INTS],
        returns="int" if default is not None else "int | None", what=what, steps=steps,
        bodies={
            "builtin": f"values = sorted({src}, reverse=True)\nreturn values[{k - 1}] if len(values) >= {k} else {d}",
            "loop": loop,
        },
        ref=make(k, distinct), gen=lambda r: (rand_ints(r, -5, 12, 0, 8),), edges=[([],), ([3, 3, 3],)],
        consts=[str(k), d], doc=[f"{ORDINAL[k]} largest value of `$a`.", "Rank and pick."],
        tweaks=[make(k + 1, distinct), make(k, not distinct)] + ([make(k - 1, distinct)] if k > 1 else []),
        depth=2, remarks=["Sort descending, index.", "sorted(..., reverse=True)."],
    )  # fmt: skip


@family(
    "window_sum",
    "list",
    "largest/smallest sum of k consecutive elements",
    "scan measure find compute",
)
def window_sum(rng: Random) -> Task:
    k = rng.randint(2, 5)
    big = rng.random() < 0.6
    default = pick(rng, [0, None, -1])
    d = repr(default)
    fname, word = ("max", "largest") if big else ("min", "smallest")
    what = [f"the {word} sum of {k} consecutive elements of `$a`, or {d} if `$a` has fewer than {k} elements",
            f"the {word} total over all windows of {k} adjacent values in `$a` ({d} when no window fits)"]  # fmt: skip
    steps = [[f"If `$a` has fewer than {k} elements, return {d}.", f"Too short for a window of {k}: {d}."],
             [f"Slide a window of length {k} over `$a` and compute each window's sum.",
              f"Window sums: sum(`$a`[i:i + {k}]) for every start i."],
             [f"Return the {word} of those sums.", f"Take the {fname} over the windows."]]  # fmt: skip

    def make(kk: int):
        def ref(xs: list[int]) -> int | None:
            if len(xs) < kk:
                return default
            f = max if big else min
            return f(sum(xs[i : i + kk]) for i in range(len(xs) - kk + 1))

        return ref

    return Task(
        params={"k": k, "big": big, "default": default}, args=[INTS],
        returns="int" if default is not None else "int | None", what=what, steps=steps,
        bodies={
            "comp": f"if len($a) < {k}:\n    return {d}\nreturn {fname}(sum($a[i:i + {k}]) for i in range(len($a) - {k - 1}))",
            "loop": body(f"""
                if len($a) < {k}:
                    return {d}
                window = sum($a[:{k}])
                best = window
                for i in range({k}, len($a)):
                    window += $a[i] - $a[i - {k}]
                    best = {fname}(best, window)
                return best"""),
        },
        ref=make(k), gen=lambda r: (rand_ints(r, -10, 20, 0, 9),), edges=[([],), ([1] * (k - 1),)],
        consts=[str(k), d], doc=[f"{fname.capitalize()} window sum of `$a`.", f"Best sum of {k} in a row."],
        tweaks=[make(k + 1), make(k - 1)], depth=2, remarks=["Sliding window.", "Window sums."],
    )  # fmt: skip


@family(
    "count_pairs",
    "list",
    "count index pairs whose sum compares to a target",
    "count tally match find",
)
def count_pairs(rng: Random) -> Task:
    t = rng.randint(-5, 25)
    op = pick(rng, ["==", "<", ">", "=="])
    text = cmp_text(op, t)[0]
    what = [f"the number of index pairs (i, j) with i < j such that `$a`[i] + `$a`[j] is {text}",
            f"how many pairs of positions i < j in `$a` have a sum {text}"]  # fmt: skip
    steps = [["Consider every pair of positions i < j.", "Loop over all pairs i < j."],
             [f"Count the pair when `$a`[i] + `$a`[j] {op} {t}.", f"Test the pair sum against {t} with {op}."],
             ["Return the count (0 for fewer than two elements).", "The number of such pairs is the answer."]]  # fmt: skip

    def make(tt: int):
        return lambda xs: sum(1 for x, y in combinations(xs, 2) if CMP[op](x + y, tt))

    return Task(
        params={"t": t, "op": op}, args=[INTS], returns="int", what=what, steps=steps,
        bodies={
            "loop": body(f"""
                count = 0
                for i in range(len($a)):
                    for j in range(i + 1, len($a)):
                        if $a[i] + $a[j] {op} {t}:
                            count += 1
                return count"""),
            "comp": f"return sum(1 for i in range(len($a)) for j in range(i + 1, len($a)) if $a[i] + $a[j] {op} {t})",
            "builtin": f"return sum(1 for x, y in combinations($a, 2) if x + y {op} {t})",
        },
        ref=make(t), gen=lambda r: (rand_ints(r, -5, 15, 0, 7),), edges=[([],)], consts=[str(t)],
        doc=["Count pairs in `$a`.", f"Pairs with sum {op} {t}."], tweaks=[make(t + 1), make(t - 1)],
        imports=("from itertools import combinations",), depth=2, remarks=["Nested loops over pairs.", "All pairs."],
    )  # fmt: skip


@family("rotate_list", "list", "rotate a list left or right by k", "rotate shift cycle move")
def rotate_list(rng: Random) -> Task:
    k = rng.randint(1, 9)
    left = rng.random() < 0.5
    way = "left" if left else "right"
    what = [f"`$a` rotated {way} by {k} positions (the shift is taken modulo the length; an empty list stays empty)",
            f"a copy of `$a` cyclically shifted {k} places to the {way} ({k} modulo len(`$a`); [] for [])"]  # fmt: skip
    moves = "the first elements move to the end" if left else "the last elements move to the front"
    steps = [["An empty list is returned as is.", "Guard the empty case first."],
             [f"Reduce the shift: {k} % len(`$a`).", f"Only {k} modulo the length matters."],
             [f"Rotate {way}: {moves}.", f"Slice and concatenate to rotate {way}."]]  # fmt: skip

    def make(kk: int, lft: bool):
        def ref(xs: list[int]) -> list[int]:
            if not xs:
                return []
            s = kk % len(xs)
            return xs[s:] + xs[:s] if lft else xs[len(xs) - s :] + xs[: len(xs) - s]

        return ref

    slice_code = (
        "$a[shift:] + $a[:shift]" if left else "$a[len($a) - shift:] + $a[:len($a) - shift]"
    )
    return Task(
        params={"k": k, "left": left}, args=[INTS], returns="list[int]", what=what, steps=steps,
        bodies={
            "comp": f"if not $a:\n    return []\nshift = {k} % len($a)\nreturn {slice_code}",
            "builtin": f"items = deque($a)\nitems.rotate({-k if left else k})\nreturn list(items)",
        },
        ref=make(k, left), gen=lambda r: (rand_ints(r, 0, 20, 1, 7),), edges=[([],)], consts=[str(k)],
        doc=[f"Rotate `$a` {way} by {k}.", "Cyclic shift."], tweaks=[make(k + 1, left), make(k, not left)],
        imports=("from collections import deque",), remarks=["Slicing.", "Rotate with a deque."],
    )  # fmt: skip


@family(
    "chunk_reduce", "list", "reduce each consecutive chunk of k elements", "chunk batch group split"
)
def chunk_reduce(rng: Random) -> Task:
    k = rng.randint(2, 4)
    op = pick(rng, ["sum", "max", "min"])
    keep = rng.random() < 0.6
    tail = (
        "the last chunk may be shorter"
        if keep
        else f"a final chunk with fewer than {k} elements is dropped"
    )
    what = [f"the list of the {op} of each consecutive chunk of {k} elements of `$a` ({tail})",
            f"a list with one entry per block of {k} neighbouring elements of `$a`: the block's {op} ({tail})"]  # fmt: skip
    steps = [[f"Cut `$a` into chunks of {k}: `$a`[i:i + {k}] for i = 0, {k}, {2 * k}, ...", f"Step through `$a` {k} elements at a time."],
             ["Keep a short last chunk." if keep else f"Ignore a last chunk shorter than {k}.", tail.capitalize() + "."],
             [f"Reduce each chunk with {op}.", f"Apply {op}() to every chunk."]]  # fmt: skip
    fn = {"sum": sum, "max": max, "min": min}[op]

    def make(kk: int):
        def ref(xs: list[int]) -> list[int]:
            stop = len(xs) if keep else len(xs) - kk + 1
            return [fn(xs[i : i + kk]) for i in range(0, max(stop, 0), kk)]

        return ref

    stop = "len($a)" if keep else f"len($a) - {k - 1}"
    return Task(
        params={"k": k, "op": op, "keep": keep}, args=[INTS], returns="list[int]", what=what, steps=steps,
        bodies={
            "comp": f"return [{op}($a[i:i + {k}]) for i in range(0, {stop}, {k})]",
            "loop": body(f"""
                out = []
                for i in range(0, {stop}, {k}):
                    out.append({op}($a[i:i + {k}]))
                return out"""),
        },
        ref=make(k), gen=lambda r: (rand_ints(r, -5, 20, 0, 9),), edges=[([],)], consts=[str(k)],
        doc=[f"{op} of each chunk of `$a`.", f"Chunks of {k}."], tweaks=[make(k + 1), make(k - 1)] if k > 2 else [make(k + 1)],
        depth=2, remarks=["range with a step.", "Chunk and reduce."],
    )  # fmt: skip


@family(
    "zip_combine",
    "list",
    "combine two lists element-wise, truncating or padding",
    "combine merge zip pair",
)
def zip_combine(rng: Random) -> Task:
    op = pick(rng, ["+", "-", "*", "max", "min"])
    fill = pick(rng, [None, 0, 1, -1])
    expr = "max(x, y)" if op == "max" else "min(x, y)" if op == "min" else f"x {op} y"
    optext = {
        "+": "sum",
        "-": "difference (first minus second)",
        "*": "product",
        "max": "maximum",
        "min": "minimum",
    }[op]
    length = (
        "stop at the end of the shorter list"
        if fill is None
        else f"the shorter list is padded with {fill}"
    )
    what = [f"the element-wise {optext} of `$a` and `$b` ({length})",
            f"a list whose item i is {expr} with x from `$a` and y from `$b`; {length}"]  # fmt: skip
    steps = [[f"Pair up the items of `$a` and `$b` by position; {length}.",
              "Walk both lists together with zip." if fill is None else f"Use zip_longest with fillvalue={fill}."],
             [f"Combine each pair as {expr}.", f"Item i is the {optext} of the pair."],
             ["Return the list of results.", "Collect the combined values."]]  # fmt: skip
    f2 = {
        "+": lambda x, y: x + y,
        "-": lambda x, y: x - y,
        "*": lambda x, y: x * y,
        "max": max,
        "min": min,
    }[op]

    def make(fv: int | None):
        def ref(xs: list[int], ys: list[int]) -> list[int]:
            if fv is None:
                return [f2(x, y) for x, y in zip(xs, ys)]
            return [f2(x, y) for x, y in zip_longest(xs, ys, fillvalue=fv)]

        return ref

    if fill is None:
        bodies = {
            "comp": f"return [{expr} for x, y in zip($a, $b)]",
            "loop": body(f"""
                out = []
                for i in range(min(len($a), len($b))):
                    x, y = $a[i], $b[i]
                    out.append({expr})
                return out"""),
        }  # fmt: skip
    else:
        bodies = {
            "builtin": f"return [{expr} for x, y in zip_longest($a, $b, fillvalue={fill})]",
            "loop": body(f"""
                out = []
                for i in range(max(len($a), len($b))):
                    x = $a[i] if i < len($a) else {fill}
                    y = $b[i] if i < len($b) else {fill}
                    out.append({expr})
                return out"""),
        }  # fmt: skip
    return Task(
        params={"op": op, "fill": fill}, args=[INTS, INTS2], returns="list[int]", what=what, steps=steps,
        bodies=bodies, ref=make(fill),
        gen=lambda r: (rand_ints(r, -5, 12, 0, 5), rand_ints(r, -5, 12, 0, 5)), edges=[([], [])],
        consts=[str(fill)] if fill is not None else [], doc=["Combine `$a` and `$b` element-wise.", f"Pairwise {optext}."],
        tweaks=[make(fill + 1)] if fill is not None else [make(0)], imports=("from itertools import zip_longest",),
        depth=2, remarks=["zip the lists.", "Element-wise combine."],
    )  # fmt: skip


@family(
    "grid_reduce",
    "list",
    "per-row or per-column sums, maxima or counts of a matrix",
    "reduce sum scan summarize",
)
def grid_reduce(rng: Random) -> Task:
    cols = rng.random() < 0.5
    op = pick(rng, ["sum", "max", "count"])
    c = rng.randint(0, 10)
    unit = "column" if cols else "row"
    opt = {"sum": "sum", "max": "largest value", "count": f"number of entries greater than {c}"}[op]
    what = [f"a list with the {opt} of each {unit} of `$a` ({'all rows have the same length' if cols else 'rows are non-empty'}; [] for an empty matrix)",
            f"for every {unit} of the matrix `$a`, its {opt}, as a list"]  # fmt: skip
    it = "zip(*$a)" if cols else "$a"
    inner = {"sum": "sum(line)", "max": "max(line)", "count": f"sum(1 for v in line if v > {c})"}[
        op
    ]
    steps = [[f"Iterate over the {unit}s{' with zip(*`$a`)' if cols else ''}.",
              f"Visit each {unit} of `$a`{' (transpose with zip(*...))' if cols else ''}."],
             [f"For each {unit} compute its {opt}.", f"Reduce a {unit} to {inner.replace('line', unit)}."],
             ["Return the list of results.", f"One number per {unit}."]]  # fmt: skip

    def make(cc: int):
        red = {"sum": sum, "max": max, "count": lambda line: sum(1 for v in line if v > cc)}[op]
        return lambda g: [red(line) for line in (zip(*g) if cols else g)]

    return Task(
        params={"cols": cols, "op": op, "c": c if op == "count" else None}, args=[GRID], returns="list[int]",
        what=what, steps=steps,
        bodies={
            "comp": f"return [{inner} for line in {it}]",
            "loop": body(f"""
                result = []
                for line in {it}:
                    result.append({inner})
                return result"""),
        },
        ref=make(c), gen=lambda r: (_grid(r),), edges=[([],)], consts=[str(c)] if op == "count" else [],
        doc=[f"{op} per {unit} of `$a`.", f"Reduce each {unit}."], tweaks=[make(c + 1), make(c - 1)] if op == "count" else [],
        depth=2, remarks=["One comprehension.", f"Per-{unit} reduction."],
    )  # fmt: skip


def _grid(r: Random) -> list[list[int]]:
    w = r.randint(1, 4)
    return [[r.randint(-3, 15) for _ in range(w)] for _ in range(r.randint(1, 4))]


@family("histogram", "list", "bucket values into bins of width w", "bucket group count bin")
def histogram(rng: Random) -> Task:
    w = rng.randint(2, 10)
    nonneg = rng.random() < 0.3
    skip = " (negative values are skipped)" if nonneg else ""
    what = [f"a dict mapping each bin start b (a multiple of {w}) to how many values of `$a` fall in [b, b + {w}){skip}; only bins that are hit appear",
            f"the histogram of `$a` with bins of width {w}: keys are x // {w} * {w}, values are counts{skip}"]  # fmt: skip
    steps = ([["Skip negative values.", "Only x >= 0 is counted."]] if nonneg else []) + [
        [f"The bin of x starts at x // {w} * {w} (floor division, so negatives work).", f"Bin start: x // {w} * {w}."],
        ["Count how many values land in each bin.", "Increment the count of the value's bin."],
        ["Return the dict of counts.", "Bins with no values are absent."],
    ]  # fmt: skip
    cond = " if x >= 0" if nonneg else ""

    def make(ww: int):
        return lambda xs: dict(Counter(x // ww * ww for x in xs if x >= 0 or not nonneg))

    guard = "    if x < 0:\n        continue\n" if nonneg else ""
    return Task(
        params={"w": w, "nonneg": nonneg}, args=[INTS], returns="dict[int, int]", what=what, steps=steps,
        bodies={
            "loop": f"bins = {{}}\nfor x in $a:\n{guard}    start = x // {w} * {w}\n    bins[start] = bins.get(start, 0) + 1\nreturn bins",
            "builtin": f"return dict(Counter(x // {w} * {w} for x in $a{cond}))",
        },
        ref=make(w), gen=lambda r: (rand_ints(r, -10, 30, 0, 8),), edges=[([],)], consts=[str(w)],
        doc=["Histogram of `$a`.", f"Bins of width {w}."], tweaks=[make(w + 1), make(w - 1)],
        imports=("from collections import Counter",), depth=2 + nonneg, remarks=["Count bin starts.", "Floor-divide and count."],
    )  # fmt: skip


BRACKETS = ("()", "[]", "{}", "<>")


@family(
    "brackets",
    "string",
    "bracket balance check or maximum nesting depth",
    "check validate verify measure",
)
def brackets(rng: Random) -> Task:
    kinds = [b for b in BRACKETS if rng.random() < 0.5] or [pick(rng, BRACKETS)]
    depth_op = rng.random() < 0.4
    opens, closes = "".join(b[0] for b in kinds), "".join(b[1] for b in kinds)
    names = " ".join(kinds)
    if depth_op:
        what = [f"the largest number of brackets open at the same time when reading `$a` left to right; the brackets are {names}, an opening bracket opens one level and a closing bracket closes one if any is open (other characters are ignored)",
                f"the maximum nesting depth of the brackets {names} in `$a`, counting +1 for an opener and -1 for a closer (never below 0)"]  # fmt: skip
        steps = [["Keep a depth counter, starting at 0.", "Track the current depth and the best depth."],
                 [f"An opener in {opens!r} adds 1 and may raise the maximum.", f"On {opens!r}: depth += 1, update the best."],
                 [f"A closer in {closes!r} subtracts 1 if the depth is positive.", "Closers never push the depth below 0."],
                 ["Return the maximum depth seen.", "The best depth is the answer."]]  # fmt: skip
        code = body(f"""
            depth = best = 0
            for ch in $a:
                if ch in {opens!r}:
                    depth += 1
                    best = max(best, depth)
                elif ch in {closes!r} and depth > 0:
                    depth -= 1
            return best""")

        def ref(s: str) -> int:
            d = b = 0
            for ch in s:
                if ch in opens:
                    d += 1
                    b = max(b, d)
                elif ch in closes and d > 0:
                    d -= 1
            return b

        returns = "int"
    else:
        what = [f"whether the brackets {names} in `$a` are balanced and properly nested (other characters are ignored)",
                f"True if every bracket of the kinds {names} in `$a` is closed by the matching bracket in the right order, else False"]  # fmt: skip
        steps = [["Use a stack of open brackets.", "Push every opener onto a stack."],
                 [f"Push openers ({opens!r}).", f"On an opener in {opens!r}, push it."],
                 [f"On a closer in {closes!r}, the stack top must be its partner; pop it.", "A closer needs the matching opener on top."],
                 ["At the end the stack must be empty.", "Balanced means nothing is left open."]]  # fmt: skip
        pairs = ", ".join(f"{b[1]!r}: {b[0]!r}" for b in kinds)
        code = body(f"""
            pairs = {{{pairs}}}
            stack = []
            for ch in $a:
                if ch in {opens!r}:
                    stack.append(ch)
                elif ch in pairs:
                    if not stack or stack.pop() != pairs[ch]:
                        return False
            return not stack""")

        def ref(s: str) -> bool:
            match = {b[1]: b[0] for b in kinds}
            st: list[str] = []
            for ch in s:
                if ch in opens:
                    st.append(ch)
                elif ch in match:
                    if not st or st.pop() != match[ch]:
                        return False
            return not st

        returns = "bool"

    def gen(r: Random) -> tuple:
        out = ""
        for _ in range(r.randint(0, 5)):
            b = r.choice(kinds)
            inner = r.choice(["", "x", b, r.choice(kinds)])
            out += b[0] + inner + b[1] if r.random() < 0.8 else r.choice(b + "ab")
        if out and r.random() < 0.4:  # break it: drop, swap or add one character
            i = r.randrange(len(out))
            out = r.choice([out[:i] + out[i + 1 :], out[::-1], out + r.choice(opens + closes)])
        return (out,)

    return Task(
        params={"kinds": kinds, "depth": depth_op}, args=[STR], returns=returns, what=what, steps=steps,
        bodies={"loop": code}, ref=ref, gen=gen, edges=[("",)], consts=[], doc=["Bracket check on `$a`.", "Scan the brackets."],
        depth=2, min_distinct=2, remarks=["A stack scan." if not depth_op else "A depth counter.", "One pass."],
    )  # fmt: skip


@family(
    "longest_run", "list", "length of the longest run with a property", "measure find scan count"
)
def longest_run(rng: Random) -> Task:
    kind = pick(rng, ["equal", "increasing", "cmp", "cmp"])
    op = pick(rng, [">", ">=", "<"])
    c = rng.randint(0, 15)
    if kind == "equal":
        prop, cond = "consecutive equal elements", "x == $a[i - 1]"
    elif kind == "increasing":
        prop, cond = "consecutive strictly increasing elements", "x > $a[i - 1]"
    else:
        prop, cond = f"consecutive elements that are all {cmp_text(op, c)[0]}", f"x {op} {c}"
    what = [f"the length of the longest run of {prop} in `$a` (0 for an empty list)",
            f"how long the longest stretch of {prop} in `$a` is"]  # fmt: skip
    if kind == "cmp":
        steps = [[f"Keep a current run length; reset it to 0 when x {op} {c} fails.", f"Count consecutive values with x {op} {c}."],
                 ["Track the longest run seen.", "Update the best after each step."],
                 ["Return the best (0 for an empty list).", "The longest stretch is the answer."]]  # fmt: skip
        loop = f"best = run = 0\nfor x in $a:\n    if {cond}:\n        run += 1\n        best = max(best, run)\n    else:\n        run = 0\nreturn best"
    else:
        steps = [[f"A run continues while {'each element equals' if kind == 'equal' else 'each element is larger than'} the previous one.",
                  "Compare each element with its predecessor."],
                 ["When the chain breaks, a new run of length 1 starts.", "Reset the run to 1 when the chain breaks."],
                 ["Track the longest run; an empty list gives 0.", "Return the best length seen."]]  # fmt: skip
        loop = f"best = run = 0\nfor i, x in enumerate($a):\n    run = run + 1 if i > 0 and {cond} else 1\n    best = max(best, run)\nreturn best"

    def make(cc: int):
        def ref(xs: list[int]) -> int:
            best = run = 0
            for i, x in enumerate(xs):
                if kind == "cmp":
                    run = run + 1 if CMP[op](x, cc) else 0
                else:
                    ok = i > 0 and (x == xs[i - 1] if kind == "equal" else x > xs[i - 1])
                    run = run + 1 if ok else 1
                best = max(best, run)
            return best

        return ref

    bodies = {"loop": loop}
    if kind == "equal":
        bodies["builtin"] = "return max((len(list(group)) for _, group in groupby($a)), default=0)"
    vals = (0, 6) if kind == "equal" else (-5, 20)
    return Task(
        params={"kind": kind, **({"op": op, "c": c} if kind == "cmp" else {})}, args=[INTS], returns="int",
        what=what, steps=steps, bodies=bodies, ref=make(c), gen=lambda r: (rand_ints(r, *vals, 0, 10),),
        edges=[([],)], consts=[str(c)] if kind == "cmp" else [], doc=["Longest run in `$a`.", "Scan for runs."],
        tweaks=[make(c + 1), make(c - 1)] if kind == "cmp" else [], imports=("from itertools import groupby",),
        depth=2, remarks=["Track the current and best run.", "One pass with counters."],
    )  # fmt: skip


@family(
    "count_peaks", "list", "count local maxima that stand out by a margin", "count detect find spot"
)
def count_peaks(rng: Random) -> Task:
    d = rng.randint(0, 6)
    ends = rng.random() < 0.4
    end_text = (
        "the first and last elements count when they beat their single neighbour"
        if ends
        else "the first and last elements never count"
    )
    what = [f"the number of peaks in `$a`: elements larger than each neighbour by more than {d} ({end_text})",
            f"how many elements of `$a` exceed both neighbours by more than {d}; {end_text}"]  # fmt: skip
    steps = [["Look at each position with its neighbours.", "For every index i compare `$a`[i] with `$a`[i - 1] and `$a`[i + 1]."],
             [f"A peak needs `$a`[i] - neighbour > {d} for each neighbour.", f"Both differences must exceed {d}."],
             [end_text.capitalize() + ".", "Missing neighbours are treated as satisfied." if ends else "Skip the two ends."],
             ["Return the number of peaks.", "Count them."]]  # fmt: skip

    def make(dd: int):
        def ref(xs: list[int]) -> int:
            n = 0
            for i, x in enumerate(xs):
                if not ends and (i == 0 or i == len(xs) - 1):
                    continue
                left = i == 0 or x - xs[i - 1] > dd
                right = i == len(xs) - 1 or x - xs[i + 1] > dd
                n += left and right
            return n

        return ref

    if ends:
        bodies = {"loop": body(f"""
            count = 0
            for i, x in enumerate($a):
                left_ok = i == 0 or x - $a[i - 1] > {d}
                right_ok = i == len($a) - 1 or x - $a[i + 1] > {d}
                if left_ok and right_ok:
                    count += 1
            return count""")}  # fmt: skip
    else:
        bodies = {
            "comp": f"return sum(1 for i in range(1, len($a) - 1) if $a[i] - $a[i - 1] > {d} and $a[i] - $a[i + 1] > {d})",
            "loop": body(f"""
                count = 0
                for i in range(1, len($a) - 1):
                    if $a[i] - $a[i - 1] > {d} and $a[i] - $a[i + 1] > {d}:
                        count += 1
                return count"""),
        }  # fmt: skip
    return Task(
        params={"d": d, "ends": ends}, args=[INTS], returns="int", what=what, steps=steps, bodies=bodies,
        ref=make(d), gen=lambda r: (rand_ints(r, 0, 12, 0, 10),), edges=[([],)], consts=[str(d)],
        doc=["Count peaks in `$a`.", f"Peaks with margin {d}."], tweaks=[make(d + 1)] + ([make(d - 1)] if d else []),
        depth=2, remarks=["Compare with neighbours.", "Local maxima."],
    )  # fmt: skip


@family(
    "occurrence_filter",
    "list",
    "values occurring exactly / at least / at most k times",
    "select filter find collect",
)
def occurrence_filter(rng: Random) -> Task:
    k = rng.randint(1, 3)
    mode = pick(rng, ["==", ">=", "<="])
    ordered = rng.random() < 0.5
    mtext = {"==": "exactly", ">=": "at least", "<=": "at most"}[mode]
    order = "in increasing order" if ordered else "in order of first appearance"
    what = [f"the distinct values of `$a` that occur {mtext} {k} time{'s' if k > 1 else ''}, {order}",
            f"a list of each value that appears {mtext} {k} time{'s' if k > 1 else ''} in `$a`, listed once, {order}"]  # fmt: skip
    steps = [["Count the occurrences of every value.", "Build a dict of counts."],
             [f"Keep the values whose count is {mtext} {k} (count {mode} {k}).", f"Select values with count {mode} {k}."],
             ["Sort them in increasing order." if ordered else "Keep the order of first appearance (dicts keep insertion order).",
              f"Return them {order}."]]  # fmt: skip

    def make(kk: int):
        def ref(xs: list[int]) -> list[int]:
            c = Counter(xs)
            out = [x for x in c if CMP[mode](c[x], kk)]
            return sorted(out) if ordered else out

        return ref

    wrap = ("sorted(", ")") if ordered else ("[", "]")
    return Task(
        params={"k": k, "mode": mode, "ordered": ordered}, args=[INTS], returns="list[int]", what=what, steps=steps,
        bodies={
            "loop": body(f"""
                counts = {{}}
                for x in $a:
                    counts[x] = counts.get(x, 0) + 1
                return {wrap[0]}x for x in counts if counts[x] {mode} {k}{wrap[1]}"""),
            "builtin": f"counts = Counter($a)\nreturn {wrap[0]}x for x, n in counts.items() if n {mode} {k}{wrap[1]}",
        },
        ref=make(k), gen=lambda r: (rand_ints(r, 0, 6, 0, 9),), edges=[([],)], consts=[str(k)],
        doc=["Filter `$a` by occurrence count.", f"Values seen {mtext} {k} times."],
        tweaks=[make(k + 1)] + ([make(k - 1)] if k > 1 else []), imports=("from collections import Counter",),
        depth=2, remarks=["Count, then select.", "A Counter does it."],
    )  # fmt: skip


@family("interleave", "list", "interleave two lists in chunks", "merge weave combine zip")
def interleave(rng: Random) -> Task:
    k = rng.randint(1, 4)
    b_first = rng.random() < 0.4
    rest = rng.random() < 0.6
    first, second = ("$b", "$a") if b_first else ("$a", "$b")
    tail = (
        "then append whatever is left of the longer list"
        if rest
        else "stop as soon as either list runs out of chunks"
    )
    what = [f"the list made by taking {k} element{'s' if k > 1 else ''} at a time alternately from `{first[1:]}` and `{second[1:]}` (starting with `{first[1:]}`); {tail}".replace("`a`", "`$a`").replace("`b`", "`$b`"),
            f"an interleaving of `{first[1:]}` and `{second[1:]}` in chunks of {k}, `{first[1:]}` first; {tail}".replace("`a`", "`$a`").replace("`b`", "`$b`")]  # fmt: skip
    steps = [[f"Walk both lists in steps of {k}.", f"Use an index i = 0, {k}, {2 * k}, ..."],
             [f"Append {first}[i:i + {k}], then {second}[i:i + {k}].", f"Take a chunk of {k} from {first}, then from {second}."],
             []]  # fmt: skip

    def make(kk: int, bf: bool):
        def ref(xs: list[int], ys: list[int]) -> list[int]:
            p, q = (ys, xs) if bf else (xs, ys)
            out: list[int] = []
            i = 0
            while i < len(p) or i < len(q):
                if not rest and (i >= len(p) or i >= len(q)):
                    break
                out += p[i : i + kk] + q[i : i + kk]
                i += kk
            return out

        return ref

    cond = (
        f"i < len({first}) or i < len({second})"
        if rest
        else f"i < len({first}) and i < len({second})"
    )
    steps[2] = ["Continue while either list has elements left." if rest else "Stop when either list is exhausted.",
                tail.capitalize() + "."]  # fmt: skip
    return Task(
        params={"k": k, "b_first": b_first, "rest": rest}, args=[INTS, INTS2], returns="list[int]", what=what,
        steps=steps,
        bodies={"loop": body(f"""
            out = []
            i = 0
            while {cond}:
                out += {first}[i:i + {k}] + {second}[i:i + {k}]
                i += {k}
            return out""")},
        ref=make(k, b_first), gen=lambda r: (rand_ints(r, 0, 9, 0, 6), rand_ints(r, 10, 30, 0, 6)),
        edges=[([], [])], consts=[str(k)], doc=["Interleave `$a` and `$b`.", f"Alternate chunks of {k}."],
        tweaks=[make(k + 1, b_first), make(k, not b_first)], depth=2, remarks=["Index in steps.", "Alternate chunks."],
    )  # fmt: skip
