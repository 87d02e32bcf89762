"""diag kl on a model dir that is not a training run (no format in a manifest): --format given."""

from __future__ import annotations

import pandas as pd


def test_kl_of_a_plain_model_dir_against_itself(tiny_base, triples_file, tmp_path):
    from diagnostics.kl import KlConfig, main

    out = tmp_path / "kl"
    main(
        KlConfig(
            model=[str(tiny_base)],
            base=str(tiny_base),
            data=str(triples_file),
            split="test",
            format="follow",
            out=str(out),
            n_resamples=200,
        )
    )
    kl = pd.read_parquet(out / "kl.parquet")
    assert len(kl) > 0 and kl["kl_mean"].abs().max() < 1e-6
    summary = pd.read_parquet(out / "kl_summary.parquet")
    assert {"cot", "code"} <= set(summary["span"]) and summary["token_kl_mean"].notna().all()
