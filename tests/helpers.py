"""Small, deterministic triples for tests that must not depend on the toy world."""

from __future__ import annotations

import random
from pathlib import Path

from synthesis.schema import Triple, write_triples

_OPS = [
    ("add", "+", "adds {c} to every number", "x + {c}"),
    ("scale", "*", "multiplies every number by {c}", "x * {c}"),
    ("shift", "-", "subtracts {c} from every number", "x - {c}"),
]


def make_triples(n: int = 24, seed: int = 0, splits: bool = True) -> list[Triple]:
    """`n` small list-mapping tasks with cot, code, tests and a seed answer."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        name, sym, phrase, expr = _OPS[i % len(_OPS)]
        c = rng.randint(2, 9)
        fn = f"{name}_{c}_items_{i}"
        problem = (
            f"Write a function `{fn}(values: list[int]) -> list[int]` that {phrase.format(c=c)} "
            "in the list and returns the new list."
        )
        cot = (
            f"We need to transform each element.\nStep 1: loop over `values`.\n"
            f"Step 2: compute `{expr.format(c=c)}` for each element x.\n"
            "Step 3: collect the results in a new list and return it."
        )
        code = (
            f"def {fn}(values: list[int]) -> list[int]:\n"
            f'    """Apply x {sym} {c} to each value."""\n'
            f"    return [{expr.format(c=c)} for x in values]"
        )
        ns: dict = {}
        exec(code, ns)
        tests = []
        for _ in range(3):
            arg = [rng.randint(-5, 5) for _ in range(rng.randint(0, 4))]
            tests.append(f"assert {fn}({arg!r}) == {ns[fn](arg)!r}")
        split = ("train", "train", "train", "val", "test")[i % 5] if splits else None
        out.append(
            Triple(
                id=f"t{i}",
                problem=problem,
                cot=cot,
                code=code,
                tests=tests,
                entry_point=fn,
                seed_answer=f"Use a comprehension:\n```python\n{code}\n```",
                source="tests",
                meta={"split": split, "family": name} if split else {"family": name},
            )
        )
    return out


def write_test_triples(path: Path, n: int = 24, seed: int = 0, splits: bool = True) -> Path:
    return write_triples(path, make_triples(n, seed, splits))
