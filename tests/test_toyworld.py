"""The toy world: determinism, validity of every instance, splits, names, text, dedup.

.venv/bin/pytest tests/test_toyworld.py -q
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import asdict

import pytest

from plumbing import InputError
from synthesis.seeds import Seed
from synthesis.toyworld import (
    DEFAULT_OOD_FAMILIES,
    FAMILIES,
    TOY_KEY,
    ToyWorld,
    toy_teacher_response,
)
from synthesis.toyworld.stats import measure, near_duplicate_keep_rate
from synthesis.toyworld.world import _differs

N_BULK = 3000


@pytest.fixture(scope="module")
def bulk():
    return ToyWorld(seed=0).instances(N_BULK)


def run_asserts(code: str, tests: list[str]) -> list[int]:
    """Exec the code, then each assert in the same namespace; the indices that fail."""
    namespace: dict = {}
    exec(compile(code, "<toy>", "exec"), namespace)
    failed = []
    for i, test in enumerate(tests):
        try:
            exec(test, namespace)
        except AssertionError:
            failed.append(i)
    return failed


def fenced(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)\n```", text, re.DOTALL)


def test_registry_has_30_standalone_families_and_pipelines():
    kinds = Counter(f.kind for f in FAMILIES.values())
    standalone = [n for n, f in FAMILIES.items() if f.kind != "pipeline"]
    assert len(standalone) >= 30, kinds
    assert kinds["pipeline"] >= 8
    assert {"string", "list", "number", "dict"} <= set(kinds)
    assert set(DEFAULT_OOD_FAMILIES) <= set(FAMILIES)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_generates_valid_instances(name):
    world = ToyWorld(seed=7, families=[name], ood_families=())
    for inst in world.instances(25):
        seed = inst.seed
        assert seed.meta["family"] == name
        tests = seed.meta[TOY_KEY]["tests"]
        assert len(tests) == 10 and len(set(tests)) == 10
        assert all(t.startswith(f"assert {seed.entry_point}(") for t in tests)
        assert run_asserts(seed.code, tests) == []
        # the terse seed answer's code (often another style) passes the same asserts
        (answer_code,) = fenced(seed.seed_answer)
        assert run_asserts(answer_code, tests) == []


def test_same_seed_same_output_different_seed_different():
    a = [asdict(s) for s in ToyWorld(seed=3).generate(150)]
    b = [asdict(s) for s in ToyWorld(seed=3).generate(150)]
    c = [asdict(s) for s in ToyWorld(seed=4).generate(150)]
    assert a == b
    assert sum(x["code"] == y["code"] for x, y in zip(a, c)) < 5
    # a longer run extends a shorter one: ids are stable
    assert [asdict(s) for s in ToyWorld(seed=3).generate(60)] == a[:60]
    assert len({s["id"] for s in a}) == 150 and a[0]["id"] == "toy-3-0"


def test_output_does_not_depend_on_the_process_hash_seed():
    """Two fresh interpreters with different PYTHONHASHSEED produce byte-identical seeds."""
    script = (
        "import hashlib, json; from dataclasses import asdict; "
        "from synthesis.toyworld import ToyWorld; w = ToyWorld(seed=0); "
        "s = w.generate(150) + w.generate(20, split='ood'); "
        "print(hashlib.sha256(json.dumps([asdict(x) for x in s]).encode()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": str(h)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for h in (1, 2)
    }
    assert len(digests) == 1


def test_bulk_instances_are_valid_and_reference_agrees(bulk):
    for inst in bulk:
        seed, task = inst.seed, inst.task
        ast.parse(seed.code)
        assert seed.source == "toy" and seed.instruction and seed.entry_point
        tests = seed.meta[TOY_KEY]["tests"]
        assert run_asserts(seed.code, tests) == [], seed.id
        # second code path: the independent reference function gives the asserted values
        assert not any(
            _differs(task.ref(*args), out) for args, out in zip(inst.inputs, inst.expected)
        )
        # every near miss (a pipeline stage dropped) fails at least one assert
        for miss in task.near_misses:
            assert any(
                _differs(_safe(miss, args), out) for args, out in zip(inst.inputs, inst.expected)
            )
        want = 2 if task.returns == "bool" else 3
        assert len({repr(v) for v in inst.expected}) >= want, seed.id


def _safe(fn, args):
    try:
        return fn(*args)
    except Exception as err:
        return err


def test_constant_tweaks_are_mostly_caught(bulk):
    """A constant moved by one is rejected by the asserts in the large majority of cases. The
    rest are (nearly) equivalent tweaks: any(3 * x > 10) == any(3 * x > 11) for every input;
    measured on seed 0, 320 of 355 uncaught tweaks had no separating input among 2000 random
    ones."""
    caught = total = 0
    for inst in bulk:
        for tweak in inst.task.tweaks:
            total += 1
            caught += any(
                _differs(_safe(tweak, args), out) for args, out in zip(inst.inputs, inst.expected)
            )
    assert total > 2000
    assert caught / total > 0.88, caught / total


def test_assert_values_vary(bulk):
    outputs = Counter(repr(v) for inst in bulk for v in inst.expected)
    # no single value dominates the corpus of expected values, nor any one instance's asserts
    assert outputs.most_common(1)[0][1] / sum(outputs.values()) < 0.12
    modal = [Counter(repr(v) for v in inst.expected).most_common(1)[0][1] for inst in bulk]
    assert sum(m >= 8 for m in modal) < 0.01 * N_BULK
    assert sum(m <= 3 for m in modal) > 0.6 * N_BULK
    empties = sum(1 for inst in bulk for args in inst.inputs if args and args[0] in ([], "", {}))
    assert empties > N_BULK * 0.5  # edge cases are there


def test_splits_disjoint_at_family_params_level(bulk):
    world = ToyWorld(seed=0)
    extra = world.instances(400, split="test") + world.instances(200, split="val")
    by_split: dict[str, set] = {}
    for inst in bulk + extra:
        m = inst.seed.meta
        key = (m["family"], json.dumps(m["params"], sort_keys=True))
        by_split.setdefault(m["split"], set()).add(key)
        assert world.split_of(m["family"], m["params"]) == m["split"]
    assert not by_split["train"] & by_split["test"]
    assert not by_split["train"] & by_split["val"]
    assert not by_split["val"] & by_split["test"]
    ood_fams = {f for f, _ in by_split["ood"]}
    assert ood_fams <= set(DEFAULT_OOD_FAMILIES)
    for split in ("train", "val", "test"):
        assert not {f for f, _ in by_split[split]} & set(DEFAULT_OOD_FAMILIES)
    counts = Counter(inst.seed.meta["split"] for inst in bulk)
    assert 0.7 < counts["train"] / N_BULK < 0.85
    assert 0.05 < counts["test"] / N_BULK < 0.15 and 0.05 < counts["val"] / N_BULK < 0.15
    assert 0.02 < counts["ood"] / N_BULK < 0.15


def test_split_requests_and_exact_counts():
    world = ToyWorld(seed=1)
    seeds = world.generate_splits({"train": 40, "test": 15, "ood": 10})
    assert Counter(s.meta["split"] for s in seeds) == {"train": 40, "test": 15, "ood": 10}
    assert all(s.meta["family"] in DEFAULT_OOD_FAMILIES for s in seeds if s.meta["split"] == "ood")
    assert len({s.id for s in seeds}) == len(seeds)
    assert all(s.meta["split"] == "val" for s in world.generate(12, split="val"))
    custom = ToyWorld(seed=1, ood_families=["caesar_shift", "pipe_sum"])
    assert {s.meta["family"] for s in custom.generate(30, split="ood")} <= {
        "caesar_shift",
        "pipe_sum",
    }
    assert "pipe_sum" not in {s.meta["family"] for s in custom.generate(300)} - {
        s.meta["family"] for s in custom.generate(300) if s.meta["split"] == "ood"
    }


def test_bad_configuration_is_a_clear_input_error():
    with pytest.raises(InputError, match="unknown family 'nope'"):
        ToyWorld(ood_families=["nope"])
    with pytest.raises(InputError, match="unknown split"):
        ToyWorld().generate(3, split="dev")
    with pytest.raises(InputError, match="no ood_families"):
        ToyWorld(ood_families=()).generate(3, split="ood")
    with pytest.raises(InputError, match="not a toy-world seed"):
        toy_teacher_response(Seed(id="x", code="def f():\n    return 1", source="jsonl:a"))


def test_problem_and_cot_mention_names_and_constants(bulk):
    for inst in bulk:
        seed = inst.seed
        fn = seed.entry_point
        code_args = [a.arg for a in ast.parse(seed.code).body[-1].args.args]
        assert f"`{fn}" in seed.instruction or f"{fn}(" in seed.instruction
        for arg in code_args:
            assert re.search(rf"\b{arg}\b", seed.instruction), (seed.id, arg)
        cot = seed.meta[TOY_KEY]["cot"]
        for const in inst.task.consts:
            whole = re.compile(rf"(?<![\w]){re.escape(const)}(?![\w])")  # "3" not inside "13"
            assert whole.search(seed.instruction), (seed.id, const)
            assert whole.search(cot), (seed.id, const, cot)


def test_names_are_varied_and_test_names_never_seen_in_train(bulk):
    names = [inst.seed.entry_point for inst in bulk[:2000]]
    assert len(set(names)) >= 1000, len(set(names))
    train = {i.seed.entry_point for i in bulk if i.seed.meta["split"] == "train"}
    held = {i.seed.entry_point for i in bulk if i.seed.meta["split"] != "train"}
    assert not train & held
    args = Counter(a.arg for i in bulk for a in ast.parse(i.seed.code).body[-1].args.args)
    assert len(args) >= 300


def test_difficulty_follows_composition_depth(bulk):
    seen = Counter()
    for inst in bulk:
        m = inst.seed.meta
        assert m["difficulty"] == {1: "easy", 2: "medium", 3: "hard"}[m["depth"]]
        if m["kind"] == "pipeline":
            assert len(m["families"]) == m["depth"] + 1  # stages + terminal
        seen[m["difficulty"]] += 1
    assert min(seen.values()) > N_BULK * 0.1, seen


def test_teacher_response_has_the_contract_sections(bulk):
    for inst in bulk[:300]:
        seed = inst.seed
        text = toy_teacher_response(seed)
        heads = [
            ln for ln in text.split("\n") if ln in ("[Task]", "[Analysis]", "[Solution]", "[Test]")
        ]
        assert heads == ["[Analysis]", "[Solution]", "[Test]"]
        analysis = text.split("[Analysis]\n", 1)[1].split("\n[Solution]", 1)[0]
        assert analysis == seed.meta[TOY_KEY]["cot"] and analysis.strip()
        code, tests = fenced(text)
        assert code == seed.code
        asserts = tests.split("\n")
        assert len(asserts) == 10 and run_asserts(code, asserts) == []
        # the seed answer is terse: code plus at most one line of prose, not the CoT
        answer = seed.seed_answer
        prose = [
            ln
            for ln in re.sub(r"```python\n.*?\n```", "", answer, flags=re.DOTALL).split("\n")
            if ln.strip()
        ]
        assert len(prose) <= 1 and seed.meta[TOY_KEY]["cot"] not in answer


def test_sizes_fit_a_small_context(bulk):
    words = sorted(len(i.seed.instruction.split()) for i in bulk)
    steps = sorted(len(i.task.steps) for i in bulk)
    code_lines = sorted(len(i.seed.code.split("\n")) for i in bulk)
    median = N_BULK // 2
    assert 25 <= words[median] <= 90 and words[-1] <= 130, (words[median], words[-1])
    assert 3 <= steps[median] <= 8 and steps[-1] <= 8
    assert 4 <= code_lines[median] <= 15 and code_lines[-1] <= 22, (
        code_lines[median],
        code_lines[-1],
    )


def test_near_duplicates_are_rare_under_minhash(bulk):
    """The synthesis dedup (MinHash LSH over 5-token shingles of ast-normalized code, first seen
    wins) keeps at least 95% of 2000 toy instances at Jaccard 0.85 and at 0.9."""
    codes = [inst.seed.code for inst in bulk[:2000]]
    assert near_duplicate_keep_rate(codes, 0.85) >= 0.95
    assert near_duplicate_keep_rate(codes, 0.9) >= 0.97
    # the same code twice is always dropped
    assert near_duplicate_keep_rate(codes[:50] + codes[:50], 0.9) <= 0.5


def test_stats_report_measures_a_small_run():
    result = measure(n=200, seed=2, param_draws=20)
    assert sum(result["split_mix"].values()) == 200
    assert result["speed"]["mix_per_cpu_s"] > 0
    assert result["tokens"]["problem_plus_response"]["max"] < 512
    assert result["names"]["train_names_reused_in_val_test_ood"] == 0
    assert set(result["families"]["distinct_params"]) == set(FAMILIES)
    assert all(1 < v <= 20 for v in result["families"]["distinct_params"].values())
