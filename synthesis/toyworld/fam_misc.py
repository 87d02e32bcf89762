"""Standalone toy families over numbers and dicts."""

from __future__ import annotations

from collections import Counter
from random import Random

from synthesis.toyworld.core import (
    CMP,
    DICT,
    DICT2,
    HI,
    INT,
    LO,
    POS_INT,
    STR,
    WORDS,
    Task,
    body,
    cmp_text,
    family,
    pick,
    rand_words,
)

# ---------------------------------------------------------------------------------------------
# numbers


@family(
    "digit_stats",
    "number",
    "a statistic over the decimal digits of an integer",
    "count sum measure digest",
)
def digit_stats(rng: Random) -> Task:
    op = pick(rng, ["count", "sum_ge", "product", "sum_parity"])
    d = rng.randint(0, 9)
    even = rng.random() < 0.5
    if op == "count":
        what = [
            f"how many times the digit {d} appears in `$a` (ignore the sign)",
            f"the number of {d} digits in the decimal form of abs(`$a`)",
        ]
        core = [f"Count the digits equal to {d}.", f"Add one for each digit {d}."]
        loop_test, loop_upd, init, comp = (
            f"digit == {d}",
            "result += 1",
            "0",
            f"return str(abs($a)).count('{d}')",
        )
        fn = lambda ds, dd: sum(1 for x in ds if x == dd)  # noqa: E731
    elif op == "sum_ge":
        what = [
            f"the sum of the digits of `$a` that are at least {d} (ignore the sign)",
            f"the total of the decimal digits of abs(`$a`) that are >= {d}",
        ]
        core = [f"Add up the digits that are >= {d}.", f"Sum only digits of at least {d}."]
        loop_test, loop_upd, init, comp = (
            f"digit >= {d}",
            "result += digit",
            "0",
            f"return sum(int(c) for c in str(abs($a)) if int(c) >= {d})",
        )
        fn = lambda ds, dd: sum(x for x in ds if x >= dd)  # noqa: E731
    elif op == "product":
        d = 0
        what = [
            "the product of the non-zero digits of `$a` (ignore the sign; 1 if there are none)",
            "the product of the digits of abs(`$a`) that are not 0, or 1 if every digit is 0",
        ]
        core = ["Multiply the non-zero digits together.", "Skip zeros; multiply the rest."]
        loop_test, loop_upd, init, comp = "digit != 0", "result *= digit", "1", None
        fn = lambda ds, dd: _prod(x for x in ds if x != 0)  # noqa: E731
    else:
        d = 0 if even else 1
        word = "even" if even else "odd"
        what = [
            f"the sum of the {word} digits of `$a` (ignore the sign)",
            f"the total of the decimal digits of abs(`$a`) that are {word}",
        ]
        core = [
            f"Add up the {word} digits (digit % 2 == {d}).",
            f"Sum the digits with digit % 2 == {d}.",
        ]
        loop_test, loop_upd, init, comp = (
            f"digit % 2 == {d}",
            "result += digit",
            "0",
            f"return sum(int(c) for c in str(abs($a)) if int(c) % 2 == {d})",
        )
        fn = lambda ds, dd: sum(x for x in ds if x % 2 == dd)  # noqa: E731
    steps = [["Work with abs(`$a`) so the sign does not matter.", "Drop the sign first."],
             ["Take the decimal digits one by one (n % 10, then n //= 10).", "Read the digits of the number."],
             core, ["Return the result.", "That value is the answer."]]  # fmt: skip

    def make(dd: int):
        return lambda n: fn([int(c) for c in str(abs(n))], dd)

    bodies = {"loop": body(f"""
        num = abs($a)
        result = {init}
        while True:
            digit = num % 10
            if {loop_test}:
                {loop_upd}
            num //= 10
            if num == 0:
                return result""")}  # fmt: skip
    if comp:
        bodies["comp"] = comp
    return Task(
        params={"op": op, "d": d}, args=[INT], returns="int", what=what, steps=steps, bodies=bodies,
        ref=make(d), gen=lambda r: (r.randint(0, 99999) * (1 if r.random() < 0.8 else -1),), edges=[(0,)],
        consts=[str(d)] if op in ("count", "sum_ge") else [], doc=["Digit statistic of `$a`.", "Work over the digits."],
        tweaks=[make(d + 1), make(d - 1)] if op in ("count", "sum_ge") else [], depth=1 + (op != "count"),
        remarks=["Digit loop with % and //.", "Go through the digits."],
    )  # fmt: skip


def _prod(xs) -> int:  # type: ignore[no-untyped-def]
    out = 1
    for x in xs:
        out *= x
    return out


@family(
    "divisors",
    "number",
    "list / count / sum the divisors of n above a bound",
    "list find count factor",
)
def divisors(rng: Random) -> Task:
    op = pick(rng, ["list", "count", "sum"])
    m = rng.randint(1, 4)
    proper = rng.random() < 0.4
    excl = ", excluding `$a` itself" if proper else ""
    optext = {"list": "the increasing list", "count": "the number", "sum": "the sum"}[op]
    what = [f"{optext} of the divisors d of `$a` with d >= {m}{excl} (`$a` >= 1)",
            f"{optext} of the positive integers d >= {m} that divide `$a` evenly{excl}"]  # fmt: skip
    stop = "$a" if proper else "$a + 1"
    steps = [[f"Try every d from {m} up to `$a`{' - 1' if proper else ''}.", f"Loop d over range({m}, {stop})."],
             ["Keep d when `$a` % d == 0.", "d is a divisor if the remainder is 0."],
             [{"list": "Return them in increasing order.", "count": "Return how many there are.", "sum": "Return their sum."}[op],
              "That gives the answer."]]  # fmt: skip
    agg = {"list": ("[", "]"), "count": ("len([", "])"), "sum": ("sum(", ")")}[op]

    def make(mm: int):
        def ref(n: int) -> object:
            ds = [d for d in range(mm, n if proper else n + 1) if n % d == 0]
            return {"list": ds, "count": len(ds), "sum": sum(ds)}[op]

        return ref

    loop_upd = {"list": "found.append(d)", "count": "found += 1", "sum": "found += d"}[op]
    return Task(
        params={"op": op, "m": m, "proper": proper}, args=[POS_INT], returns="list[int]" if op == "list" else "int",
        what=what, steps=steps,
        bodies={
            "comp": f"return {agg[0]}d for d in range({m}, {stop}) if $a % d == 0{agg[1]}",
            "loop": body(f"""
                found = {'[]' if op == 'list' else '0'}
                for d in range({m}, {stop}):
                    if $a % d == 0:
                        {loop_upd}
                return found"""),
        },
        ref=make(m), gen=lambda r: (r.randint(1, 120),), edges=[(1,)], consts=[str(m)],
        doc=["Divisors of `$a`.", f"Divisors from {m} up."], tweaks=[make(m + 1)] + ([make(m - 1)] if m > 1 else []),
        depth=2, remarks=["Trial division.", "Check every candidate."],
    )  # fmt: skip


@family(
    "series_sum", "number", "sum of i**p over 1..n with i % k == r", "sum total compute accumulate"
)
def series_sum(rng: Random) -> Task:
    p = rng.randint(1, 3)
    k = rng.randint(2, 5)
    r = rng.randrange(k)
    term = "i" if p == 1 else f"i ** {p}"
    what = [f"the sum of {term} over the integers i from 1 to `$a` inclusive with i % {k} == {r} (0 if `$a` < 1)",
            f"the total of {term} for every i in 1..`$a` that leaves remainder {r} when divided by {k}"]  # fmt: skip
    steps = [["Loop i from 1 to `$a` inclusive.", "Go over range(1, `$a` + 1)."],
             [f"Only use i with i % {k} == {r}.", f"Skip i unless its remainder mod {k} is {r}."],
             [f"Add {term} to the total." if p > 1 else "Add i to the total.", f"Accumulate {term}."],
             ["Return the total (0 for an empty range).", "The sum is the answer."]]  # fmt: skip

    def make(pp: int, kk: int, rr: int):
        return lambda n: sum(i**pp for i in range(1, n + 1) if i % kk == rr)

    return Task(
        params={"p": p, "k": k, "r": r}, args=[INT], returns="int", what=what, steps=steps,
        bodies={
            "comp": f"return sum({term} for i in range(1, $a + 1) if i % {k} == {r})",
            "loop": body(f"""
                total = 0
                for i in range(1, $a + 1):
                    if i % {k} == {r}:
                        total += {term}
                return total"""),
        },
        ref=make(p, k, r), gen=lambda rr: (rr.randint(0, 30),), edges=[(0,), (1,)], consts=[str(k), str(r)] + ([str(p)] if p > 1 else []),
        doc=["Sum a filtered series up to `$a`.", f"Sum of {term}."],
        tweaks=[make(p, k + 1, r), make(p, k, (r + 1) % k)] + ([make(p - 1, k, r)] if p > 1 else []),
        depth=2, remarks=["A filtered sum.", "Sum over a range."],
    )  # fmt: skip


@family(
    "base_repr",
    "number",
    "write n in base b, optionally zero-padded",
    "convert encode format render",
)
def base_repr(rng: Random) -> Task:
    b = rng.randint(2, 9)
    w = pick(rng, [0, 0, 4, 6, 8])
    pad = f", left-padded with zeros to at least {w} characters" if w else ""
    what = [f"the base-{b} representation of the non-negative integer `$a` as a string of digits{pad} (0 is written '0')",
            f"`$a` (>= 0) written in base {b}{pad}"]  # fmt: skip
    steps = [["0 is written as '0'.", "Handle 0 separately."],
             [f"Repeatedly take n % {b} as the next digit (from the right) and set n //= {b}.", f"Divide by {b} and collect the remainders."],
             ["Reverse the collected digits (or prepend each one).", "Digits come out least significant first."]]  # fmt: skip
    if w:
        steps.append(
            [
                f"Pad on the left with zeros to width {w} (str.zfill({w})).",
                f"zfill({w}) at the end.",
            ]
        )

    def make(bb: int):
        def ref(n: int) -> str:
            out = ""
            while n > 0:
                out = str(n % bb) + out
                n //= bb
            return (out or "0").zfill(w)

        return ref

    end = f"digits.zfill({w})" if w else "digits"
    bodies = {"loop": body(f"""
        if $a == 0:
            digits = '0'
        else:
            digits = ''
            num = $a
            while num > 0:
                digits = str(num % {b}) + digits
                num //= {b}
        return {end}""")}  # fmt: skip
    if b in (2, 8):
        code = "b" if b == 2 else "o"
        bodies["builtin"] = (
            f"return format($a, '{code}').zfill({w})" if w else f"return format($a, '{code}')"
        )
    return Task(
        params={"b": b, "w": w}, args=[INT], returns="str", what=what, steps=steps, bodies=bodies,
        ref=make(b), gen=lambda r: (r.randint(0, 500),), edges=[(0,)], consts=[str(b)] + ([str(w)] if w else []),
        doc=[f"`$a` in base {b}.", "Base conversion."], tweaks=[make(b + 1), make(b - 1)] if b > 2 else [make(3)],
        depth=2 + bool(w), remarks=["Repeated division.", "Collect remainders."],
    )  # fmt: skip


@family(
    "count_multiples",
    "number",
    "count integers in [lo, hi] divisible by k or/and/xor m",
    "count tally measure",
)
def count_multiples(rng: Random) -> Task:
    k, m = rng.sample(range(2, 10), 2)
    mode = pick(rng, ["or", "and", "xor"])
    logic = {
        "or": f"by {k} or by {m} (or both)",
        "and": f"by both {k} and {m}",
        "xor": f"by exactly one of {k} and {m}",
    }[mode]
    cond = {"or": f"x % {k} == 0 or x % {m} == 0", "and": f"x % {k} == 0 and x % {m} == 0",
            "xor": f"(x % {k} == 0) != (x % {m} == 0)"}[mode]  # fmt: skip
    what = [f"how many integers x with `$a` <= x <= `$b` are divisible {logic} (0 if `$a` > `$b`)",
            f"the count of integers in the closed range from `$a` to `$b` that are divisible {logic}"]  # fmt: skip
    steps = [["Go over every x from `$a` to `$b` inclusive.", "Loop x over range(`$a`, `$b` + 1)."],
             [f"Count x when {cond}.", f"x counts if it is divisible {logic}."],
             ["Return the count (an empty range gives 0).", "That count is the answer."]]  # fmt: skip

    def make(kk: int):
        test = {"or": lambda x: x % kk == 0 or x % m == 0, "and": lambda x: x % kk == 0 and x % m == 0,
                "xor": lambda x: (x % kk == 0) != (x % m == 0)}[mode]  # fmt: skip
        return lambda lo, hi: sum(1 for x in range(lo, hi + 1) if test(x))

    def gen(r: Random) -> tuple:
        lo = r.randint(-10, 40)
        return (lo, lo + r.randint(-2, 40))

    return Task(
        params={"k": k, "m": m, "mode": mode}, args=[LO, HI],
        returns="int", what=what, steps=steps,
        bodies={
            "comp": f"return sum(1 for x in range($a, $b + 1) if {cond})",
            "loop": body(f"""
                count = 0
                for x in range($a, $b + 1):
                    if {cond}:
                        count += 1
                return count"""),
        },
        ref=make(k), gen=gen, edges=[(5, 4)], consts=[str(k), str(m)], doc=["Count multiples in a range.", "Divisibility count."],
        tweaks=[make(k + 1), make(k - 1)], depth=2, remarks=["Loop over the range.", "Modulo tests."],
    )  # fmt: skip


WORD_PAIRS = (
    ("Fizz", "Buzz"),
    ("Foo", "Bar"),
    ("Ping", "Pong"),
    ("Tic", "Tac"),
    ("Zip", "Zap"),
    ("Hi", "Lo"),
)


@family("fizzbuzz", "number", "FizzBuzz with custom divisors and words", "build list make render")
def fizzbuzz(rng: Random) -> Task:
    a, b = rng.sample(range(2, 8), 2)
    w1, w2 = pick(rng, WORD_PAIRS)
    both = w1 + w2
    what = [f"a list of strings for i = 1..`$a`: {both!r} if i is divisible by both {a} and {b}, {w1!r} if only by {a}, {w2!r} if only by {b}, else str(i)",
            f"the {w1}{w2} sequence up to `$a`: for each i from 1 to `$a`, {w1!r} for multiples of {a}, {w2!r} for multiples of {b}, {both!r} for multiples of both, otherwise the number as a string"]  # fmt: skip
    steps = [["Loop i from 1 to `$a`.", "Go over range(1, `$a` + 1)."],
             [f"Check divisibility by both {a} and {b} first: {both!r}.", f"Multiples of both {a} and {b} give {both!r}."],
             [f"A multiple of {a} alone gives {w1!r}; of {b} alone, {w2!r}.", f"{w1!r} for {a}, {w2!r} for {b}."],
             ["Any other number becomes str(i).", "Other numbers become their string form."]]  # fmt: skip

    def make(aa: int, bb: int):
        def ref(n: int) -> list[str]:
            return [both if i % aa == 0 and i % bb == 0 else w1 if i % aa == 0 else w2 if i % bb == 0 else str(i)
                    for i in range(1, n + 1)]  # fmt: skip

        return ref

    return Task(
        params={"a": a, "b": b, "words": [w1, w2]}, args=[INT], returns="list[str]", what=what, steps=steps,
        bodies={
            "loop": body(f"""
                out = []
                for i in range(1, $a + 1):
                    if i % {a} == 0 and i % {b} == 0:
                        out.append({both!r})
                    elif i % {a} == 0:
                        out.append({w1!r})
                    elif i % {b} == 0:
                        out.append({w2!r})
                    else:
                        out.append(str(i))
                return out"""),
            "comp": body(f"""
                out = []
                for i in range(1, $a + 1):
                    word = ({w1!r} if i % {a} == 0 else '') + ({w2!r} if i % {b} == 0 else '')
                    out.append(word or str(i))
                return out"""),
        },
        ref=make(a, b), gen=lambda r: (r.randint(0, 15),), edges=[(0,), (1,)], consts=[str(a), str(b), repr(w1), repr(w2)],
        doc=[f"{w1}{w2} up to `$a`.", "Divisibility words."], tweaks=[make(a + 1, b), make(a, b + 1)], depth=2,
        remarks=["Classic FizzBuzz shape.", "Check both first."],
    )  # fmt: skip


@family(
    "collatz_steps", "number", "Collatz steps until the value is small", "count measure track run"
)
def collatz_steps(rng: Random) -> Task:
    c = rng.randint(1, 9)
    odd_only = rng.random() < 0.3
    counted = "only the 3 * n + 1 steps" if odd_only else "every step"
    what = [f"the number of steps (counting {counted}) needed to bring `$a` down to at most {c}, where a step replaces n by n // 2 if n is even and by 3 * n + 1 if it is odd (`$a` >= 1; 0 steps if it is already at most {c})",
            f"how many Collatz steps (counting {counted}) it takes for `$a` to reach a value <= {c}; even n -> n // 2, odd n -> 3 * n + 1"]  # fmt: skip
    steps = [[f"While the value is greater than {c}, apply one step.", f"Loop until n <= {c}."],
             ["Even: n // 2. Odd: 3 * n + 1.", "Halve even numbers; map odd n to 3 * n + 1."],
             ["Count only the odd (3 * n + 1) steps." if odd_only else "Count every step.",
              "Increment the counter for 3 * n + 1 steps only." if odd_only else "Add one per step."],
             ["Return the counter.", "The count is the answer."]]  # fmt: skip

    def make(cc: int):
        def ref(n: int) -> int:
            k = 0
            while n > cc:
                if n % 2 == 0:
                    n //= 2
                    k += not odd_only
                else:
                    n = 3 * n + 1
                    k += 1
            return k

        return ref

    even_inc = "" if odd_only else "\n        steps += 1"
    return Task(
        params={"c": c, "odd_only": odd_only}, args=[POS_INT], returns="int", what=what, steps=steps,
        bodies={"loop": f"steps = 0\nnum = $a\nwhile num > {c}:\n    if num % 2 == 0:\n        num //= 2{even_inc}\n    else:\n        num = 3 * num + 1\n        steps += 1\nreturn steps"},
        ref=make(c), gen=lambda r: (r.randint(1, 60),), edges=[(1,)], consts=[str(c)],
        doc=["Collatz steps for `$a`.", f"Steps until at most {c}."], tweaks=[make(c + 1)] + ([make(c - 1)] if c > 1 else []),
        depth=2, remarks=["A while loop.", "Simulate the steps."],
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# dicts


def _rand_dict(r: Random, vmax: int = 20, n_max: int = 6) -> dict[str, int]:
    keys = r.sample(
        ["a", "b", "c", "d", "x", "y", "z", "id", "ab", "key", "foo", "bar", "qux"],
        r.randint(0, n_max),
    )
    return {k: r.randint(-3, vmax) for k in keys}


@family(
    "invert_dict",
    "dict",
    "invert a dict, grouping keys by (transformed) value",
    "invert group index reverse",
)
def invert_dict(rng: Random) -> Task:
    mode = pick(rng, ["list", "first", "last"])
    k = pick(rng, [None, None, 2, 3, 4, 5])
    vexpr = f"value % {k}" if k else "value"
    vtext = f"value % {k}" if k else "value"
    coll = {"list": "the sorted list of keys that have it", "first": "the first key (in dict order) that has it",
            "last": "the last key (in dict order) that has it"}[mode]  # fmt: skip
    what = [
        f"a dict that maps each {vtext} occurring in `$a` to {coll}",
        f"the inverse of `$a`, keyed by {vtext}: each maps to {coll}",
    ]
    steps = [["Go through the items of `$a` in order.", "Iterate over `$a`.items()."],
             [f"The new key is {vtext}.", f"Compute {vtext} for each entry."] if k else ["The value becomes the new key.", "Swap key and value."],
             {"list": ["Collect all keys per new key, then sort each list.", "Append keys to a list; sort at the end."],
              "first": ["Keep only the first key seen for each new key.", "Do not overwrite an existing entry."],
              "last": ["Later keys overwrite earlier ones.", "Assign every time so the last key wins."]}[mode]]  # fmt: skip

    def make(kk: int | None):
        def ref(d: dict[str, int]) -> dict:
            out: dict = {}
            for key, v in d.items():
                nk = v % kk if kk else v
                if mode == "list":
                    out.setdefault(nk, []).append(key)
                elif mode == "last" or nk not in out:
                    out[nk] = key
            if mode == "list":
                out = {nk: sorted(ks) for nk, ks in out.items()}
            return out

        return ref

    if mode == "list":
        loop = f"groups = {{}}\nfor key, value in $a.items():\n    groups.setdefault({vexpr}, []).append(key)\nreturn {{v: sorted(ks) for v, ks in groups.items()}}"
        rtype = "dict[int, list[str]]"
    elif mode == "first":
        loop = f"out = {{}}\nfor key, value in $a.items():\n    if {vexpr} not in out:\n        out[{vexpr}] = key\nreturn out"
        rtype = "dict[int, str]"
    else:
        loop = f"out = {{}}\nfor key, value in $a.items():\n    out[{vexpr}] = key\nreturn out"
        rtype = "dict[int, str]"
    bodies = {"loop": loop}
    if mode == "last":
        bodies["comp"] = f"return {{{vexpr}: key for key, value in $a.items()}}"
    return Task(
        params={"mode": mode, "k": k}, args=[DICT], returns=rtype, what=what, steps=steps, bodies=bodies,
        ref=make(k), gen=lambda r: (_rand_dict(r, 6),), edges=[({},)], consts=[str(k)] if k else [],
        doc=["Invert `$a`.", "Group keys by value."], tweaks=[make(k + 1)] if k else [], depth=2,
        remarks=["Swap keys and values.", "One pass over items()."],
    )  # fmt: skip


@family(
    "filter_dict", "dict", "select dict entries by a value condition", "select filter pick screen"
)
def filter_dict(rng: Random) -> Task:
    op = pick(rng, [">", ">=", "<", "<=", "=="])
    c = rng.randint(-2, 15)
    out = pick(rng, ["keys", "dict", "count", "sum"])
    cond = cmp_text(op, c)[0]
    otext = {"keys": "the sorted list of keys", "dict": "a new dict with the entries", "count": "the number of entries",
             "sum": "the sum of the values"}[out]  # fmt: skip
    what = [
        f"{otext} of `$a` whose value is {cond}",
        f"{otext} for the items of `$a` with value {op} {c}",
    ]
    steps = [["Look at every key/value pair of `$a`.", "Iterate over `$a`.items()."],
             [f"Keep the pairs with value {op} {c}.", f"Select entries whose value is {cond}."],
             [{"keys": "Return the keys, sorted.", "dict": "Build a dict from them.", "count": "Count them.", "sum": "Sum their values (0 if none)."}[out],
              "That is the answer."]]  # fmt: skip
    final = {"keys": ("sorted(k for k, v in $a.items() if {t})", "list[str]"), "dict": ("{{k: v for k, v in $a.items() if {t}}}", "dict[str, int]"),
             "count": ("sum(1 for v in $a.values() if {t})", "int"), "sum": ("sum(v for v in $a.values() if {t})", "int")}[out]  # fmt: skip
    t = f"v {op} {c}"

    def make(cc: int):
        def ref(d: dict[str, int]) -> object:
            kept = {k: v for k, v in d.items() if CMP[op](v, cc)}
            return {
                "keys": sorted(kept),
                "dict": kept,
                "count": len(kept),
                "sum": sum(kept.values()),
            }[out]

        return ref

    acc = {"keys": ("found = []", "found.append(k)", "sorted(found)"), "dict": ("found = {}", "found[k] = v", "found"),
           "count": ("found = 0", "found += 1", "found"), "sum": ("found = 0", "found += v", "found")}[out]  # fmt: skip
    return Task(
        params={"op": op, "c": c, "out": out}, args=[DICT], returns=final[1], what=what, steps=steps,
        bodies={
            "comp": "return " + final[0].format(t=t),
            "loop": f"{acc[0]}\nfor k, v in $a.items():\n    if {t}:\n        {acc[1]}\nreturn {acc[2]}",
        },
        ref=make(c), gen=lambda r: (_rand_dict(r, 20),), edges=[({},)], consts=[str(c)],
        doc=["Filter the entries of `$a`.", f"Entries with value {op} {c}."], tweaks=[make(c + 1), make(c - 1)],
        depth=2, remarks=["Filter items().", "A dict filter."],
    )  # fmt: skip


@family(
    "top_keys", "dict", "the k keys with the largest or smallest values", "rank pick top select"
)
def top_keys(rng: Random) -> Task:
    k = rng.randint(1, 3)
    big = rng.random() < 0.6
    c = pick(rng, [None, 0, 5, 10])
    word = "largest" if big else "smallest"
    ign = f" among the entries with value at least {c}" if c is not None else ""
    what = [f"the {k} key{'s' if k > 1 else ''} of `$a` with the {word} values{ign}, {word} first, ties broken by key in alphabetical order (fewer if there are not enough entries)",
            f"a list of up to {k} keys of `$a`{ign}, ordered by value ({word} first) and then by key"]  # fmt: skip
    sort_key = "(-kv[1], kv[0])" if big else "(kv[1], kv[0])"
    steps = ([[f"Ignore entries whose value is below {c}.", f"Keep only values >= {c}."]] if c is not None else []) + [
        [f"Sort the items by value, {word} first, then by key.", f"Sort with key {sort_key.replace('kv[1]', 'value').replace('kv[0]', 'key')}."],
        [f"Take the first {k} and return their keys.", f"Keep the top {k} keys."],
        ["An empty dict gives [].", "Fewer entries than k just give a shorter list."],
    ]  # fmt: skip
    src = f"(kv for kv in $a.items() if kv[1] >= {c})" if c is not None else "$a.items()"

    def make(kk: int, cc: int | None):
        def ref(d: dict[str, int]) -> list[str]:
            items = [kv for kv in d.items() if cc is None or kv[1] >= cc]
            items.sort(key=lambda kv: (-kv[1], kv[0]) if big else (kv[1], kv[0]))
            return [kv[0] for kv in items[:kk]]

        return ref

    return Task(
        params={"k": k, "big": big, "c": c}, args=[DICT], returns="list[str]", what=what, steps=steps,
        bodies={
            "builtin": f"ranked = sorted({src}, key=lambda kv: {sort_key})\nreturn [key for key, _ in ranked[:{k}]]",
            "loop": f"ranked = sorted({src}, key=lambda kv: {sort_key})\nresult = []\nfor key, _ in ranked:\n    if len(result) == {k}:\n        break\n    result.append(key)\nreturn result",
        },
        ref=make(k, c), gen=lambda r: (_rand_dict(r, 15),), edges=[({},)], consts=[str(k)] + ([str(c)] if c is not None else []),
        doc=[f"Top {k} keys of `$a`.", "Rank keys by value."],
        tweaks=[make(k + 1, c)] + ([make(k - 1, c)] if k > 1 else []) + ([make(k, c + 1)] if c is not None else []),
        depth=2 + (c is not None), remarks=["Sort items by value.", "sorted with a tuple key."],
    )  # fmt: skip


@family(
    "merge_dicts",
    "dict",
    "merge two dicts with a rule for shared keys",
    "merge combine join update",
)
def merge_dicts(rng: Random) -> Task:
    op = pick(rng, ["+", "max", "min", "first", "second"])
    c = pick(rng, [None, None, 0, 5, 10])
    rule = {"+": "the two values are added", "max": "the larger value is kept", "min": "the smaller value is kept",
            "first": "the value from `$a` is kept", "second": "the value from `$b` is kept"}[op]  # fmt: skip
    drop = f"; finally drop every entry whose value is below {c}" if c is not None else ""
    what = [f"a dict with every key of `$a` and `$b`, where for a key in both {rule}{drop}",
            f"the merge of `$a` and `$b` (keys of `$a` first, then new keys of `$b`); on a shared key {rule}{drop}"]  # fmt: skip
    combine = {
        "+": "out[k] + v",
        "max": "max(out[k], v)",
        "min": "min(out[k], v)",
        "first": "out[k]",
        "second": "v",
    }[op]
    steps = [["Start from a copy of `$a`.", "Copy `$a` into the result."],
             [f"Add each entry of `$b`; for a shared key, {rule}.", f"For a key in both dicts, {rule}."]]  # fmt: skip
    if c is not None:
        steps.append([f"Remove entries with a value below {c}.", f"Keep values >= {c}."])
    steps.append(["Return the merged dict.", "Two empty dicts give {}."])

    def make(cc: int | None):
        f2 = {
            "+": lambda x, y: x + y,
            "max": max,
            "min": min,
            "first": lambda x, y: x,
            "second": lambda x, y: y,
        }[op]

        def ref(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
            out = dict(a)
            for k, v in b.items():
                out[k] = f2(out[k], v) if k in out else v
            return {k: v for k, v in out.items() if cc is None or v >= cc}

        return ref

    tail = (
        f"\nreturn {{k: v for k, v in out.items() if v >= {c}}}"
        if c is not None
        else "\nreturn out"
    )
    return Task(
        params={"op": op, "c": c}, args=[DICT, DICT2], returns="dict[str, int]", what=what, steps=steps,
        bodies={"loop": f"out = dict($a)\nfor k, v in $b.items():\n    out[k] = {combine} if k in out else v{tail}"},
        ref=make(c), gen=lambda r: (_rand_dict(r, 15, 4), _rand_dict(r, 15, 4)), edges=[({}, {})],
        consts=[str(c)] if c is not None else [], doc=["Merge `$a` and `$b`.", "Combine two dicts."],
        tweaks=[make(c + 1), make(c - 1)] if c is not None else [], depth=2 + (c is not None),
        remarks=["Copy, then update.", "Merge with a rule."],
    )  # fmt: skip


@family(
    "group_words", "dict", "group words by length or first/last letter", "group bucket index sort"
)
def group_words(rng: Random) -> Task:
    key = pick(rng, ["len", "first", "last"])
    count = rng.random() < 0.4
    m = rng.randint(2, 5)
    kexpr = {"len": "len(w)", "first": "w[0]", "last": "w[-1]"}[key]
    ktext = {"len": "length", "first": "first letter", "last": "last letter"}[key]
    vtext = (
        "how many of them there are" if count else "the list of those words in their original order"
    )
    what = [f"a dict grouping the words of `$a` that have at least {m} letters by their {ktext}: each key maps to {vtext}",
            f"for the words in `$a` with length >= {m}, a dict from {ktext} ({kexpr}) to {vtext}"]  # fmt: skip
    steps = [[f"Skip words shorter than {m}.", f"Only words with len(w) >= {m} count."],
             [f"The group key of a word is its {ktext}: {kexpr}.", f"Key each word by {kexpr}."],
             ["Count the words per key." if count else "Append each word to its key's list.",
              "Increment the key's count." if count else "Keep the original order inside each list."]]  # fmt: skip

    def make(mm: int):
        def ref(ws: list[str]) -> dict:
            out: dict = {}
            for w in ws:
                if len(w) >= mm:
                    kk = len(w) if key == "len" else w[0] if key == "first" else w[-1]
                    out[kk] = out.get(kk, 0) + 1 if count else out.get(kk, []) + [w]
            return out

        return ref

    upd = (
        f"groups[{kexpr}] = groups.get({kexpr}, 0) + 1"
        if count
        else f"groups.setdefault({kexpr}, []).append(w)"
    )
    kt = "int" if key == "len" else "str"
    return Task(
        params={"key": key, "count": count, "m": m}, args=[WORDS], returns=f"dict[{kt}, {'int' if count else 'list[str]'}]",
        what=what, steps=steps,
        bodies={"loop": f"groups = {{}}\nfor w in $a:\n    if len(w) >= {m}:\n        {upd}\nreturn groups"},
        ref=make(m), gen=lambda r: (rand_words(r, 0, 7),), edges=[([],)], consts=[str(m)],
        doc=["Group the words of `$a`.", f"Group by {ktext}."], tweaks=[make(m + 1), make(m - 1)],
        depth=2, remarks=["A dict of groups.", "setdefault/get."],
    )  # fmt: skip


@family("word_freq", "dict", "words occurring at least k times", "count tally rank find")
def word_freq(rng: Random) -> Task:
    k = rng.randint(1, 4)
    fold = rng.random() < 0.5
    as_dict = rng.random() < 0.5
    lower = ", lowercased" if fold else ""
    otext = (
        "a dict from each such word to its count" if as_dict else "the sorted list of those words"
    )
    what = [f"{otext}, where the words are those of `$a` (split on whitespace{lower}) that occur at least {k} time{'s' if k > 1 else ''}",
            f"for the words of `$a`{' compared case-insensitively' if fold else ''} that appear {k} or more times, {otext}"]  # fmt: skip
    steps = ([["Lowercase `$a` so case does not matter.", "Compare words in lower case."]] if fold else []) + [
        SPLIT_WORDS_M, ["Count each word.", "Tally the words."],
        [f"Keep the words with a count of at least {k}.", f"Drop words seen fewer than {k} times."],
        ["Return them as a dict of counts." if as_dict else "Return them sorted.", "That is the answer."],
    ]  # fmt: skip
    src = "$a.lower().split()" if fold else "$a.split()"

    def make(kk: int):
        def ref(s: str) -> object:
            c = Counter((s.lower() if fold else s).split())
            kept = {w: n for w, n in c.items() if n >= kk}
            return kept if as_dict else sorted(kept)

        return ref

    keep = f"for w, n in counts.items() if n >= {k}"
    final = f"{{w: n {keep}}}" if as_dict else f"sorted(w {keep})"
    return Task(
        params={"k": k, "fold": fold, "as_dict": as_dict}, args=[STR], returns="dict[str, int]" if as_dict else "list[str]",
        what=what, steps=steps,
        bodies={
            "builtin": f"counts = Counter({src})\nreturn {final}",
            "loop": f"counts = {{}}\nfor w in {src}:\n    counts[w] = counts.get(w, 0) + 1\nreturn {final}",
        },
        ref=make(k), gen=lambda r: (rand_sentence_small(r),), edges=[("",)], consts=[str(k)],
        doc=["Frequent words of `$a`.", f"Words seen at least {k} times."],
        tweaks=[make(k + 1)] + ([make(k - 1)] if k > 1 else []), imports=("from collections import Counter",),
        depth=2 + fold, remarks=["Counter over split().", "Count the words."],
    )  # fmt: skip


SPLIT_WORDS_M = [
    "Split `$a` on whitespace to get the words.",
    "Break `$a` into words with .split().",
]


def rand_sentence_small(r: Random) -> str:
    words = rand_words(r, 0, 8, vocab=4)
    return " ".join(w.upper() if r.random() < 0.2 else w for w in words)
