"""The report's drawing code (plotly), one module per diagnostic; reports.figures lists them.

    evaluation.py   results_table, difficulty_table, pass_at_1_checkpoints   (diag eval)
    comparisons.py  comparisons_table                                       (summary_*.parquet)
    ppl.py          ppl_gap, ppl_cross_order                                (diag ppl)
    kl.py           kl_valloss                                              (diag kl, valloss)
    attn.py         attn_heatmap, attn_layers, attn_cot_code, attribution   (diag attn)
    gradnorm.py     gradnorm                                                (diag gradnorm)
    ablate.py       ablation_curves                                         (diag ablate)
    train.py        train_loss                                              (diag train)
    common.py       Made, the shared layout, colors per model, CI bands, tables, curves

Each figure is `ResultSet -> Made(fig, caption, data)` or raises reports.figure_data.Skip; the
numbers come from reports.figure_data (shared with the dashboard).
"""
