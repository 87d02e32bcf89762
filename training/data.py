"""Datasets and collators for SFT on pre-tokenized examples (`training.formats.Encoded`).

Two batch layouts:
- padded (default): each row one example, right-padded to the longest in the batch; with
  `train_sampling_strategy="group_by_length"` the Trainer batches similar lengths together, so
  little compute goes to padding.
- packed (`--packing`): several examples share a row up to `max_len` tokens (first-fit
  decreasing over a seeded shuffle). `position_ids` restart at 0 for each example and no
  `attention_mask` is passed, from which transformers builds a block-diagonal causal mask, so no
  token attends across examples (tested: packed loss == padded loss). The first label of each
  example is -100 (already true: examples start with prompt tokens).
"""

from __future__ import annotations

import random
from typing import Any

from training.formats import IGNORE_INDEX, Encoded


class SFTDataset:
    """One example per item: {"input_ids": [...], "labels": [...]}."""

    def __init__(self, examples: list[Encoded]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        ex = self.examples[i]
        return {"input_ids": ex.input_ids, "labels": ex.labels}


def pack_bins(lengths: list[int], max_len: int, seed: int) -> list[list[int]]:
    """Indices grouped into bins of total length <= max_len (first-fit decreasing)."""
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)  # ties broken by a seeded order, not input order
    order.sort(key=lambda i: -lengths[i])
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order:
        for b, free in enumerate(room):
            if lengths[i] <= free:
                bins[b].append(i)
                room[b] -= lengths[i]
                break
        else:
            bins.append([i])
            room.append(max_len - lengths[i])
    random.Random(seed + 1).shuffle(bins)
    return bins


class PackedDataset:
    """One packed row per item: {"pack": [example dicts]}, each row <= max_len tokens."""

    def __init__(self, examples: list[Encoded], max_len: int, seed: int = 0):
        self.examples = examples
        self.bins = pack_bins([len(e) for e in examples], max_len, seed)

    def __len__(self) -> int:
        return len(self.bins)

    def __getitem__(self, i: int) -> dict[str, Any]:
        rows = [self.examples[j] for j in self.bins[i]]
        return {
            "input_ids": [t for e in rows for t in e.input_ids],  # for length-grouping only
            "pack": [{"input_ids": e.input_ids, "labels": e.labels} for e in rows],
        }


class PadCollator:
    """Right-pad a list of examples: input_ids (pad id), labels (-100), attention_mask."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        n = len(features)
        input_ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)  # [batch, seq]
        labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((n, width), dtype=torch.long)
        for row, f in enumerate(features):
            k = len(f["input_ids"])
            input_ids[row, :k] = torch.tensor(f["input_ids"])
            labels[row, :k] = torch.tensor(f["labels"])
            attention_mask[row, :k] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


class PackCollator:
    """Rows of packed examples with restarting position_ids and no attention_mask.

    Rows are padded to the widest row; the padding forms its own position run (0, 1, ...), so it
    is a separate "sequence" that nothing else attends to, and its labels are -100.
    """

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        rows = []
        for f in features:
            ids: list[int] = []
            labels: list[int] = []
            pos: list[int] = []
            for ex in f["pack"]:
                ids.extend(ex["input_ids"])
                labels.extend([IGNORE_INDEX, *ex["labels"][1:]])
                pos.extend(range(len(ex["input_ids"])))
            rows.append((ids, labels, pos))
        width = max(len(r[0]) for r in rows)
        n = len(rows)
        input_ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)  # [batch, seq]
        label_t = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
        position_ids = torch.zeros((n, width), dtype=torch.long)
        for row, (ids, labels, pos) in enumerate(rows):
            k = len(ids)
            input_ids[row, :k] = torch.tensor(ids)
            label_t[row, :k] = torch.tensor(labels)
            position_ids[row, :k] = torch.tensor(pos)
            position_ids[row, k:] = torch.arange(width - k)
        return {"input_ids": input_ids, "labels": label_t, "position_ids": position_ids}
