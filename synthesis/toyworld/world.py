"""`ToyWorld`: seeded, offline generation of toy tasks as `Seed`s, with held-out splits.

    world = ToyWorld(seed=0)                       # default OOD families: DEFAULT_OOD_FAMILIES
    seeds = world.generate(2000)                   # natural mix: ~80/10/10 train/val/test + ood
    tests = world.generate(200, split="test")      # exactly 200 test seeds
    mix = world.generate_splits({"train": 2000, "test": 200, "ood": 200})
    text = toy_teacher_response(seeds[0])          # [Analysis] / [Solution] / [Test] response

Splits. A salted hash of (family, params) puts each parameter combination in train, val or
test (`val_fraction`, `test_fraction`; params = pipeline structure and every constant), so a
test combination never occurs in train. Families in `ood_families` form the `ood` split and
never appear in the other three. Function names are held out too: train names never use a
held-out (verb, noun) pair and val/test/ood names always do (`heldout_name_fraction`).

Instance `index` of a stream is drawn from `Random("toy|<seed>|<stream>|<index>|<attempt>")`,
so `generate(n)` is a prefix of `generate(n + 1)`, ids are stable (`toy-<seed>-<index>`, or
`toy-<seed>-<split>-<index>` for one split) and nothing depends on the platform or the hash
seed. The family (and pipeline depth) stays fixed for FAMILY_TRIES attempts, so families whose
draws are often rejected keep their share. An attempt is rejected (and the next one drawn)
when its ten asserts take too few distinct values or cannot reject a near miss (a pipeline
stage dropped); asserts that reject each constant moved by one are searched for too (best
effort: ~90% are caught, the rest are tweaks no random input separates).

Expected values are what the generated code returns on the chosen inputs; the family's
independent reference function must agree on every one of them (a disagreement is a bug in the
family and raises RuntimeError).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from random import Random
from typing import Any

from plumbing import InputError
from synthesis.schema import SPLITS
from synthesis.seeds import Seed
from synthesis.toyworld.core import FAMILIES, Family, Task, fill, names_in, pick
from synthesis.toyworld.names import Namer, _unit
from synthesis.toyworld.pipeline import STAGES, STYLES

DEFAULT_OOD_FAMILIES = ("pipe_spread", "run_length", "window_sum", "merge_dicts")
DIFFICULTY = {1: "easy", 2: "medium", 3: "hard"}
N_TESTS = 10
MAX_ATTEMPTS = 200
FAMILY_TRIES = 40  # attempts with one family (and depth) before another is drawn
TOY_KEY = "toy"  # Seed.meta[TOY_KEY] = {"cot": ..., "tests": [...]}: what the toy teacher writes

FRAMES = (
    "Write a function `$sig` that returns {what}.",
    "Implement `$fn($params)`, where {args_is}. It should return {what}.",
    "Define a Python function named `$fn` that takes {args_inline} and returns {what}.",
    "Given {args_inline}, return {what}. Call the function `$fn`.",
    "Your task: write `$fn($params)`. Input: {args_inline}. Output: {what}.",
    "Create a function `$sig` that computes {what}, where {args_is}.",
)
EXAMPLES = (
    " For example, `{call}` returns `{out}`.",
    " Example: `{call} == {out}`.",
    " E.g. `{call}` should give `{out}`.",
)
OPENERS = ("Plan:", "Approach:", "Let's think it through.", "Steps:", "Reasoning:", "", "",
           "We need {what}.", "Goal: {what}.", "Break the task into steps.")  # fmt: skip
CLOSERS = ("", "", "", "That gives the answer.", "Now write the code.", "That completes the plan.")
CONNECTORS = ("First, ", "Then ", "Next, ", "After that, ", "Then ")


@dataclass
class Instance:
    """A generated seed plus what produced it (tests compare `task.ref` with the code)."""

    seed: Seed
    task: Task
    inputs: list[tuple] = field(default_factory=list)
    expected: list[Any] = field(default_factory=list)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def render_steps(steps: list[str], rng: Random) -> str:
    how = pick(rng, ["num", "num", "step", "dash", "prose", "lines"])
    if how == "num":
        return "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
    if how == "step":
        return "\n".join(f"Step {i}: {s}" for i, s in enumerate(steps, 1))
    if how == "dash":
        return "\n".join(f"- {s}" for s in steps)
    if how == "lines" or len(steps) == 1:
        return "\n".join(steps)
    out = [
        CONNECTORS[min(i, len(CONNECTORS) - 1)] + _lower_first(s) for i, s in enumerate(steps[:-1])
    ]
    out.append("Finally, " + _lower_first(steps[-1]))
    return " ".join(out) if rng.random() < 0.5 else "\n".join(out)


class ToyWorld:
    """The embedded default task world.

    seed                   everything (tasks, names, split hash) derives from it
    ood_families           held-out families forming the `ood` split; None -> DEFAULT_OOD_FAMILIES,
                           () -> no ood split
    families               restrict to these family names (None: all of FAMILIES)
    val_fraction, test_fraction
                           share of (family, params) combinations hashed into val / test
    heldout_name_fraction  share of (verb, noun) name pairs reserved for val/test/ood names
    pipeline_share         probability that an instance is a composed pipeline (pipe_*)
    depth_weights          weights of pipeline depth 1, 2, 3 (easy, medium, hard)
    example_rate           probability that the problem text shows one example call
    stages                 pipelines draw their list stages from these kinds only (None: all of
                           pipeline.STAGES); fewer kinds give a smaller world that is learnt
                           sooner (the default demo's)
    styles                 code styles an instance may be written in (None: loop, comp, builtin)
    """

    def __init__(
        self,
        seed: int = 0,
        ood_families: tuple[str, ...] | list[str] | None = None,
        *,
        families: tuple[str, ...] | list[str] | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        heldout_name_fraction: float = 0.15,
        pipeline_share: float = 0.5,
        depth_weights: tuple[float, ...] = (0.3, 0.4, 0.3),
        example_rate: float = 0.5,
        stages: tuple[str, ...] | list[str] | None = None,
        styles: tuple[str, ...] | list[str] | None = None,
    ) -> None:
        known = set(FAMILIES)
        chosen = list(FAMILIES) if families is None else list(families)
        ood = DEFAULT_OOD_FAMILIES if ood_families is None else tuple(ood_families)
        for what, names in (("families", chosen), ("ood_families", ood)):
            bad = [n for n in names if n not in known]
            if bad:
                raise InputError(
                    f"toy world {what}: unknown famil{'y' if len(bad) == 1 else 'ies'} "
                    f"{', '.join(map(repr, bad))} (known: {', '.join(sorted(known))})"
                )
        if not (0 <= val_fraction and 0 <= test_fraction and val_fraction + test_fraction < 1):
            raise InputError("toy world: need 0 <= val_fraction, test_fraction and their sum < 1")
        if not 0 < heldout_name_fraction < 1:
            raise InputError("toy world: heldout_name_fraction must be in (0, 1)")
        if not 1 <= len(depth_weights) <= 3 or min(depth_weights) < 0 or sum(depth_weights) <= 0:
            raise InputError("toy world: depth_weights needs 1-3 non-negative weights (depth 1..3)")
        for what, given, allowed in (("stages", stages, STAGES), ("styles", styles, STYLES)):
            bad = [n for n in given or () if n not in allowed]
            if bad or (given is not None and not given):
                raise InputError(
                    f"toy world {what}: "
                    + (f"unknown {', '.join(map(repr, bad))}" if bad else "empty")
                    + f" (known: {', '.join(sorted(allowed))})"
                )
        self.stages = None if stages is None else tuple(stages)
        self.styles = None if styles is None else tuple(styles)
        self.seed = seed
        self.ood_families = tuple(n for n in ood if n in chosen or families is None)
        self.families = tuple(dict.fromkeys(chosen + list(self.ood_families)))
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.pipeline_share = pipeline_share
        self.depth_weights = tuple(depth_weights)
        self.example_rate = example_rate
        self.namer = Namer(str(seed), heldout_name_fraction)
        self._pools: dict[str, tuple[list[Family], list[Family]]] = {}
        for stream in ("all", "in", "ood"):
            fams = [
                FAMILIES[n]
                for n in self.families
                if stream == "all" or (n in self.ood_families) == (stream == "ood")
            ]
            self._pools[stream] = (
                [f for f in fams if f.kind == "pipeline"],
                [f for f in fams if f.kind != "pipeline"],
            )

    # -- splits ---------------------------------------------------------------------------------

    def split_of(self, family: str, params: Mapping[str, Any]) -> str:
        """The split of a (family, params) combination: a pure function of the seed."""
        if family in self.ood_families:
            return "ood"
        key = json.dumps(params, sort_keys=True)
        u = _unit("split", str(self.seed), family, key)
        if u < self.test_fraction:
            return "test"
        if u < self.test_fraction + self.val_fraction:
            return "val"
        return "train"

    # -- generation -----------------------------------------------------------------------------

    def generate(self, n: int, split: str | None = None) -> list[Seed]:
        """`n` seeds: the natural split mix (split=None) or exactly `n` of one split."""
        return [inst.seed for inst in self.instances(n, split)]

    def generate_splits(self, counts: Mapping[str, int]) -> list[Seed]:
        """Exactly counts[split] seeds of each split, in SPLITS order (e.g. {"train": 2000,
        "test": 200, "ood": 200})."""
        bad = [s for s in counts if s not in SPLITS]
        if bad:
            raise InputError(f"toy world: unknown split(s) {bad} (choose from {', '.join(SPLITS)})")
        return [
            s for split in SPLITS if counts.get(split) for s in self.generate(counts[split], split)
        ]

    def instances(self, n: int, split: str | None = None) -> list[Instance]:
        if split is not None and split not in SPLITS:
            raise InputError(
                f"toy world: unknown split {split!r} (choose from {', '.join(SPLITS)})"
            )
        if split == "ood" and not self.ood_families:
            raise InputError("toy world: split 'ood' requested but no ood_families are set")
        if split in ("train", "val", "test") and not any(self._pools["in"]):
            raise InputError(f"toy world: split {split!r} requested but every family is ood")
        return [self.instance(i, split) for i in range(n)]

    def instance(self, index: int, split: str | None = None) -> Instance:
        stream = "mix" if split is None else split
        sid = f"toy-{self.seed}-{index}" if split is None else f"toy-{self.seed}-{split}-{index}"
        pool = self._pools["all" if split is None else "ood" if split == "ood" else "in"]
        pipes, solos = pool
        for attempt in range(MAX_ATTEMPTS):
            # the family stays fixed for a run of attempts, so families whose instances are
            # often rejected are not under-represented (and one with no combination in the
            # wanted split is left after FAMILY_TRIES attempts)
            pick_rng = Random(f"toy|{self.seed}|{stream}|{index}|family|{attempt // FAMILY_TRIES}")
            rng = Random(f"toy|{self.seed}|{stream}|{index}|{attempt}")
            if pipes and (not solos or pick_rng.random() < self.pipeline_share):
                fam = pick(pick_rng, pipes)
                depth = pick_rng.choices(range(1, len(self.depth_weights) + 1), self.depth_weights)[
                    0
                ]
                task = fam.build(rng, depth=depth, stages=self.stages)  # type: ignore[call-arg]
            else:
                fam = pick(pick_rng, solos)
                task = fam.build(rng)
            got = self.split_of(fam.name, task.params)
            if split is not None and got != split:
                continue
            inst = self._assemble(rng, fam, task, got, sid, index)
            if inst is not None:
                return inst
        raise RuntimeError(f"toy world: no valid instance for {sid} in {MAX_ATTEMPTS} attempts")

    # -- one instance ---------------------------------------------------------------------------

    def _assemble(
        self, rng: Random, fam: Family, task: Task, split: str, sid: str, index: int
    ) -> Instance | None:
        chosen = choose_inputs(rng, task)
        if chosen is None:
            return None
        inputs, ref_out = chosen
        # a family written in none of the allowed styles keeps its own
        allowed = [s for s in sorted(task.bodies) if self.styles is None or s in self.styles]
        style = pick(rng, allowed or sorted(task.bodies))
        avoid = set(task.reserved) if task.reserved is not None else set()
        if task.reserved is None:
            for text in task.bodies.values():
                avoid |= names_in(text)
        fn = self.namer.function(rng, heldout=split != "train", hints=fam.verbs, avoid=avoid)
        avoid.add(fn)
        names: list[str] = []
        for arg in task.args:
            if arg.pool == "hi":
                continue
            if arg.pool == "lo":
                names += self.namer.bounds(rng, avoid)
            else:
                names.append(self.namer.argument(rng, arg.pool, avoid))
            avoid.update(names)
        sub = {"fn": fn, "a": names[0], "b": names[1] if len(names) > 1 else "b"}
        params_text = ", ".join(names)
        sig = f"{fn}({', '.join(f'{n}: {a.hint}' for n, a in zip(names, task.args))}) -> {task.returns}"
        doc = fill(pick(rng, task.doc), **sub).replace("`", "")
        code = self._code(task, task.bodies[style], sig, doc, sub)

        # the expected values are what the code returns; the independent reference must agree
        namespace: dict[str, Any] = {}
        exec(compile(code, f"<toy {sid}>", "exec"), namespace)
        expected = []
        for args, want in zip(inputs, ref_out):
            try:
                got = namespace[fn](*_clone(args))
            except Exception as err:  # a bug in a family, never bad user input
                raise RuntimeError(f"{sid}: code raised {err!r} on {args!r}:\n{code}") from err
            if _differs(got, want):
                raise RuntimeError(
                    f"{sid}: code gives {got!r} but the reference {want!r} on {args!r}:\n{code}"
                )
            expected.append(got)
        tests = [_assert(fn, args, out) for args, out in zip(inputs, expected)]

        # problem text
        if task.problems:
            problem = pick(rng, task.problems)
        else:
            descs = [pick(rng, a.descs) for a in task.args]
            problem = pick(rng, FRAMES).format(
                what=pick(rng, task.what),
                args_inline=" and ".join(f"{d} `{n}`" for d, n in zip(descs, names)),
                args_is=" and ".join(f"`{n}` is {d}" for d, n in zip(descs, names)),
            )
            for note in task.notes:
                problem += " " + pick(rng, note)
        n_edges = min(len(task.edges), 3)
        if rng.random() < self.example_rate and len(inputs) > n_edges:
            k = rng.randrange(n_edges, len(inputs))
            call = f"{fn}({', '.join(map(repr, inputs[k]))})"
            if len(call) + len(repr(expected[k])) < 80:
                problem += pick(rng, EXAMPLES).format(call=call, out=repr(expected[k]))
        problem = fill(problem, sig=sig, params=params_text, **sub)

        # chain of thought
        steps = [fill(pick(rng, variants), **sub) for variants in task.steps]
        opener = pick(rng, OPENERS).format(what=fill(pick(rng, task.what), **sub))
        parts = [opener] if opener else []
        parts.append(render_steps(steps, rng))
        closer = pick(rng, CLOSERS)
        if closer:
            parts.append(closer)
        cot = "\n".join(parts)

        # the seed's "original answer": terse, another style where there is one, one remark
        others = [
            s for s in sorted(task.bodies) if s != style and task.bodies[s] != task.bodies[style]
        ]
        alt = self._code(task, task.bodies[pick(rng, others)], sig, doc, sub) if others else code
        remark = fill(pick(rng, task.remarks), **sub)
        fenced = f"```python\n{alt}\n```"
        shape = rng.randrange(3)
        answer = (
            fenced if shape == 0 else f"{remark}\n{fenced}" if shape == 1 else f"{fenced}\n{remark}"
        )

        depth = min(max(task.depth, 1), 3)
        seed = Seed(
            id=sid,
            code=code,
            instruction=problem,
            seed_answer=answer,
            entry_point=fn,
            source="toy",
            meta={
                "family": fam.name,
                "families": list(task.stages or [fam.name]),
                "kind": fam.kind,
                "difficulty": DIFFICULTY[depth],
                "depth": depth,
                "split": split,
                "params": task.params,
                "style": style,
                "world_seed": self.seed,
                "index": index,
                TOY_KEY: {"cot": cot, "tests": tests},
            },
        )
        return Instance(seed, task, inputs, expected)

    @staticmethod
    def _code(task: Task, body_text: str, sig: str, doc: str, sub: dict[str, str]) -> str:
        text = fill(body_text, **sub)
        imports = [imp for imp in task.imports if re.search(rf"\b{imp.split()[-1]}\(", text)]
        lines = [*imports, ""] if imports else []
        lines += [f"def {sig}:", f'    """{doc}"""']
        lines += [f"    {ln}" if ln else "" for ln in text.split("\n")]
        return "\n".join(lines)


def _clone(value: Any) -> Any:
    """A deep copy of plain data (lists, dicts, tuples of ints and strings), fast."""
    if isinstance(value, list):
        return [_clone(v) for v in value]
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_clone(v) for v in value)
    return value


def _differs(got: Any, want: Any) -> bool:
    return type(got) is not type(want) or got != want


def _call(func: Any, args: tuple) -> Any:
    """Call a reference or near miss (pure functions by construction: no copy needed)."""
    try:
        return func(*args)
    except Exception as err:  # a near miss may crash where the reference does not
        return err


def choose_inputs(rng: Random, task: Task) -> tuple[list[tuple], list[Any]] | None:
    """Ten distinct argument tuples and their reference outputs: the edge cases, then inputs
    chosen so that every near miss and tweak gets an assert it fails, then inputs with new
    outputs. None when no input separates a near miss or the outputs vary too little."""
    pool: list[tuple] = []
    outs: list[Any] = []
    seen: set[str] = set()

    def grow(candidates: list[tuple]) -> None:
        for args in candidates:
            key = repr(args)
            if key not in seen:
                seen.add(key)
                pool.append(args)
                outs.append(task.ref(*args))

    grow([*task.edges, *(task.gen(rng) for _ in range(3 * N_TESTS))])
    if len(pool) < N_TESTS:
        return None
    chosen = list(range(min(len(task.edges), 3)))

    def separating(miss: Any, candidates: list[int]) -> int | None:
        for i in candidates:
            if _differs(_call(miss, pool[i]), outs[i]):
                return i
        return None

    for strict, miss in [(True, m) for m in task.near_misses] + [(False, t) for t in task.tweaks]:
        if separating(miss, chosen) is not None:
            continue
        others = [i for i in range(len(pool)) if i not in chosen]
        rng.shuffle(others)
        hit = separating(miss, others)  # the first in random order: a uniform random hit
        for _ in range(3 if strict else 1):  # a rare separating input: search further
            if hit is not None:
                break
            start = len(pool)
            grow([task.gen(rng) for _ in range(3 * N_TESTS)])
            hit = separating(miss, list(range(start, len(pool))))
        if hit is not None and len(chosen) < N_TESTS:
            chosen.append(hit)
        elif strict:
            return None
    # fill up with the least represented outputs first (balances True/False, spreads values)
    rest = [i for i in range(len(pool)) if i not in chosen]
    rng.shuffle(rest)
    seen_count = Counter(repr(outs[i]) for i in chosen)
    by_value: dict[str, list[int]] = {}
    for i in rest:
        by_value.setdefault(repr(outs[i]), []).append(i)
    fill_in: list[int] = []
    while len(chosen) + len(fill_in) < N_TESTS and by_value:
        value = min(by_value, key=lambda v: seen_count[v])
        fill_in.append(by_value[value].pop())
        seen_count[value] += 1
        if not by_value[value]:
            del by_value[value]
    n_edges = min(len(task.edges), 3)
    body = chosen[n_edges:] + fill_in
    rng.shuffle(body)
    order = chosen[:n_edges] + body
    if len({repr(outs[i]) for i in order}) < task.min_distinct:
        return None
    return [pool[i] for i in order], [outs[i] for i in order]


def _assert(fn: str, args: tuple, out: Any) -> str:
    call = f"{fn}({', '.join(map(repr, args))})"
    return f"assert {call} is None" if out is None else f"assert {call} == {out!r}"


def toy_teacher_response(seed: Seed) -> str:
    """The response a teacher writes for a toy seed, in the contract's format:
    [Analysis] (the CoT), [Solution] (fenced code), [Test] (fenced, ten asserts)."""
    toy = seed.meta.get(TOY_KEY) if isinstance(seed.meta, dict) else None
    if not isinstance(toy, dict) or "cot" not in toy or "tests" not in toy:
        raise InputError(
            f"toy teacher: seed {seed.id!r} (source {seed.source!r}) is not a toy-world seed; "
            "use a real teacher for other sources"
        )
    tests = "\n".join(toy["tests"])
    return (
        f"[Analysis]\n{toy['cot']}\n[Solution]\n```python\n{seed.code}\n```\n"
        f"[Test]\n```python\n{tests}\n```\n"
    )
