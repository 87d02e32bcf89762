"""`diag synth`: build (problem, CoT, code, tests) triples from sources through a teacher."""

from __future__ import annotations

import typer

from cli.common import InputError, invoke


def _ratios(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise InputError(f"--split-ratios {text!r}: expected three numbers, e.g. 0.9,0.05,0.05")
    return parts  # type: ignore[return-value]


def register(app: typer.Typer) -> None:
    from synthesis.filters import FilterConfig as F
    from synthesis.pipeline import SynthConfig as C
    from synthesis.sources import SOURCES
    from synthesis.teacher import TEACHERS
    from synthesis.teacher import TeacherConfig as T

    sources_help = "; ".join(SOURCES.values())
    teachers_help = "; ".join(TEACHERS.values())

    @app.command("synth")
    def synth(
        out: str = typer.Option(..., help="Run folder to write."),
        source: list[str] = typer.Option(["toy"], help=f"Repeatable. {sources_help}."),
        n: int = typer.Option(None, help="toy: seeds to generate (1000); others: rows to read."),
        seed: int = typer.Option(C.seed, help="Seed (toy world, split hash)."),
        toy_families: str = typer.Option(
            None, help="toy: comma-separated families to draw from (default: all)."
        ),
        toy_ood: str = typer.Option(None, help="toy: comma-separated held-out (ood) families."),
        toy_depth: str = typer.Option(
            None, help="toy: weights of composition depth 1,2,3 (e.g. 0.5,0.5)."
        ),
        toy_stages: str = typer.Option(
            None, help="toy: comma-separated pipeline stage kinds (default: all), e.g. keep_cmp,add"
        ),
        toy_styles: str = typer.Option(
            None, help="toy: comma-separated code styles: loop, comp, builtin (default: all)."
        ),
        field: list[str] = typer.Option(
            None, help="Repeatable NAME=COLUMN: instruction, answer, code, id, entry_point."
        ),
        teacher: str = typer.Option(C.teacher, help=teachers_help + "."),
        api_key_env: str = typer.Option(T.api_key_env, help="Env var holding the API key."),
        workers: int = typer.Option(T.workers, help="Concurrent teacher requests."),
        max_retries: int = typer.Option(T.max_retries, help="Retries per request (bounded)."),
        timeout: float = typer.Option(T.timeout_s, help="Seconds per teacher request."),
        backoff: float = typer.Option(T.backoff_s, help="First backoff (s), doubling, jittered."),
        max_consecutive_failures: int = typer.Option(
            T.max_consecutive_failures, help="Abort (exit 2) after this many failures in a row."
        ),
        temperature: float = typer.Option(T.temperature, help="Teacher sampling temperature."),
        max_tokens: int = typer.Option(T.max_tokens, help="Teacher answer token limit."),
        batch_size: int = typer.Option(T.batch_size, help="hf teacher: prompts per batch."),
        prompt_file: str = typer.Option(
            None, help="Template for seeds with an instruction ({instruction}, {code})."
        ),
        task_prompt_file: str = typer.Option(
            None, help="Template for raw code (pysrc), asking for [Task] too ({code})."
        ),
        min_asserts: int = typer.Option(C.min_asserts, help="Asserts that call the entry point."),
        min_chars: int = typer.Option(F.min_chars, help="Filter: shortest seed code (chars)."),
        max_chars: int = typer.Option(F.max_chars, help="Filter: longest seed code (chars)."),
        max_lines: int = typer.Option(F.max_lines, help="Filter: longest seed code (lines)."),
        ban_import: list[str] = typer.Option(None, help="Repeatable: also ban this module."),
        allow_import: list[str] = typer.Option(None, help="Repeatable: unban this module."),
        dedup: bool = typer.Option(C.dedup, help="Exact and near-duplicate removal."),
        near_dup_threshold: float = typer.Option(
            C.near_dup_threshold, help="MinHash Jaccard threshold (0: exact dedup only)."
        ),
        decontam: list[str] = typer.Option(
            None, help="Repeatable benchmark jsonl (prompt/canonical_solution/code/text)."
        ),
        humaneval: bool = typer.Option(True, help="Decontaminate against bundled HumanEval."),
        decontam_ngram: int = typer.Option(C.decontam_ngram, help="Token n-gram size."),
        decontam_threshold: float = typer.Option(
            C.decontam_threshold, help="Share of a seed's n-grams found in a benchmark item."
        ),
        sandbox_workers: int = typer.Option(None, help="Parallel sandbox processes."),
        sandbox_timeout: float = typer.Option(C.sandbox_timeout_s, help="Seconds per program."),
        sandbox_batch: int = typer.Option(C.sandbox_batch, help="Answers per sandbox call."),
        split_ratios: str = typer.Option("0.9,0.05,0.05", help="train,val,test by id hash."),
        resume: bool = typer.Option(C.resume, help="Continue a run in --out (even finished)."),
        overwrite: bool = typer.Option(C.overwrite, help="Replace a run in --out."),
        progress: bool = typer.Option(C.progress, help="Show a progress bar."),
    ) -> None:
        """Sources -> filter -> dedup/decontam -> teacher -> parser -> sandbox -> triples.jsonl.

        Example: diag synth --source toy --n 2000 --out runs/toy

        Example: diag synth --source pysrc:src/ --teacher openai:http://127.0.0.1:8000/v1#model
        --workers 16 --out runs/raw
        """
        toy_world: dict = {}
        if toy_families:
            toy_world["families"] = [f.strip() for f in toy_families.split(",") if f.strip()]
        if toy_ood is not None:
            toy_world["ood_families"] = [f.strip() for f in toy_ood.split(",") if f.strip()]
        for key, value in (("stages", toy_stages), ("styles", toy_styles)):
            if value is not None:
                toy_world[key] = [f.strip() for f in value.split(",") if f.strip()]
        if toy_depth:
            try:
                toy_world["depth_weights"] = tuple(float(x) for x in toy_depth.split(","))
            except ValueError:
                raise InputError(
                    f"--toy-depth {toy_depth!r}: expected numbers, e.g. 0.5,0.5"
                ) from None
        banned = [m for m in F.banned_imports if m not in set(allow_import or [])]
        banned += [m for m in ban_import or [] if m not in banned]
        cfg = C(
            sources=list(source),
            out=out,
            n=n,
            seed=seed,
            toy_world=toy_world,
            fields=list(field or []),
            teacher=teacher,
            prompt_file=prompt_file,
            task_prompt_file=task_prompt_file,
            teacher_cfg=T(
                workers=workers,
                api_key_env=api_key_env,
                timeout_s=timeout,
                max_retries=max_retries,
                backoff_s=backoff,
                max_consecutive_failures=max_consecutive_failures,
                temperature=temperature,
                max_tokens=max_tokens,
                batch_size=batch_size,
            ),
            filters=F(
                min_chars=min_chars,
                max_chars=max_chars,
                max_lines=max_lines,
                banned_imports=tuple(banned),
            ),
            dedup=dedup,
            near_dup_threshold=near_dup_threshold or None,
            decontam=(["humaneval"] if humaneval else []) + list(decontam or []),
            decontam_ngram=decontam_ngram,
            decontam_threshold=decontam_threshold,
            min_asserts=min_asserts,
            sandbox_workers=sandbox_workers,
            sandbox_timeout_s=sandbox_timeout,
            sandbox_batch=sandbox_batch,
            split_ratios=_ratios(split_ratios),
            overwrite=overwrite,
            resume=resume,
            progress=progress,
        )
        stats = invoke("synthesis.pipeline:main", cfg)
        typer.echo(
            f"kept {stats['kept']} of {stats['seeds']} seeds ({stats['candidates']} candidates) "
            f"-> {out}/triples.jsonl; stats in {out}/stats.json"
        )
