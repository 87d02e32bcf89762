"""The four formats: token-exact spans, labels, order, over-long handling, bad input."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from helpers import make_triples

from plumbing import InputError
from synthesis.schema import Triple
from training.formats import (
    FORMATS,
    IGNORE_INDEX,
    SPAN_ID,
    encode,
    encode_many,
    prompt_ids,
    render,
    span_token_text,
)


@pytest.fixture(scope="module")
def tokenizers(tiny_base: Path):
    """Our base tokenizer with its chat template, and the same without (plain template)."""
    from training.modeling import load_tokenizer

    chat = load_tokenizer(tiny_base)
    plain = copy.deepcopy(chat)
    plain.chat_template = None
    assert chat.chat_template and not plain.chat_template
    return {"chat": chat, "plain": plain}


def qwen_style_tokenizer(texts: list[str]):
    """A byte-level BPE with Qwen2's pre-tokenizer regex, which fuses punctuation with the
    newlines after it (".\\n\\n" is one pre-token) -- the case the boundary rule is about."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    pattern = (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
        r"|\s*[\r\n]+|\s+(?!\S)|\s+"
    )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def _span_texts(example, rendered) -> dict[str, str]:
    return {name: rendered.span_text(name) for name in ("prompt", "cot", "code", "glue")}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("which", ["chat", "plain"])
def test_spans_round_trip_exactly(tokenizers, fmt: str, which: str) -> None:
    tok = tokenizers[which]
    for triple in make_triples(12):
        ex = encode(triple, fmt, tok)
        rendered = ex.rendered
        assert ex.n_boundary == 0
        for name, text in _span_texts(ex, rendered).items():
            decoded = span_token_text(ex, tok, name)
            if name == "prompt" and which == "plain":
                decoded = decoded.removeprefix(tok.bos_token)  # BOS is an id, not text
            assert decoded == text, (fmt, which, name)
        # EOS is the last token, in its own span, and trained
        assert ex.input_ids[-1] == tok.eos_token_id
        assert ex.span_ids[-1] == SPAN_ID["eos"] and ex.labels[-1] == tok.eos_token_id
        assert ex.span_ids.count(SPAN_ID["eos"]) == 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_labels_mask_exactly_the_prompt(tokenizers, fmt: str) -> None:
    tok = tokenizers["chat"]
    for triple in make_triples(6):
        ex = encode(triple, fmt, tok)
        for i, (tid, label, span) in enumerate(zip(ex.input_ids, ex.labels, ex.span_ids)):
            is_prompt = span == SPAN_ID["prompt"]
            assert is_prompt == (i < ex.n_prompt)
            assert (label == IGNORE_INDEX) == is_prompt
            if not is_prompt:
                assert label == tid
        # generation is fed exactly the training prompt ids
        assert prompt_ids(triple.problem, tok) == ex.input_ids[: ex.n_prompt]


def test_span_order_per_format(tokenizers) -> None:
    tok = tokenizers["chat"]
    triple = make_triples(1)[0]
    first = {}
    for fmt in FORMATS:
        ex = encode(triple, fmt, tok)
        first[fmt] = {
            name: (ex.span_ids.index(SPAN_ID[name]) if SPAN_ID[name] in ex.span_ids else None)
            for name in ("cot", "code")
        }
    assert first["wo"]["cot"] is None and first["wo"]["code"] is not None
    assert first["follow"]["cot"] < first["follow"]["code"]
    assert first["precede"]["code"] < first["precede"]["cot"]
    # seed: prose "Use a comprehension:" then the fenced code
    assert first["seed"]["cot"] < first["seed"]["code"]
    assert render(triple, "precede").response.startswith("```python\n" + triple.code)
    assert render(triple, "follow").response.endswith(triple.code + "\n```")


@pytest.mark.parametrize("fmt", FORMATS)
def test_boundary_rule_with_fusing_tokenizer(fmt: str) -> None:
    """Qwen2-style pre-tokenization fuses '.\\n\\n' and ')\\n': spans then round-trip modulo
    whitespace at their ends, the whole response round-trips exactly, and crossings are
    counted."""
    triples = make_triples(8)
    texts = [render(t, f).text for t in triples for f in FORMATS]
    tok = qwen_style_tokenizer(texts)
    n_cross = 0
    for triple in triples:
        ex = encode(triple, fmt, tok)
        n_cross += ex.n_boundary
        response_ids = [t for t, s in zip(ex.input_ids, ex.span_ids) if s != SPAN_ID["prompt"]]
        assert tok.decode(response_ids[:-1]) == ex.rendered.response
        for name in ("cot", "code"):
            text = ex.rendered.span_text(name)
            assert span_token_text(ex, tok, name).strip() == text.strip(), name
    if fmt in ("follow", "precede"):
        assert n_cross > 0  # the fusing really happens, so the rule is exercised


def test_over_long_examples_are_skipped_and_counted(tokenizers) -> None:
    tok = tokenizers["chat"]
    triples = make_triples(10)
    triples[3].cot = "very long reasoning " * 200
    examples, stats = encode_many(triples, "follow", tok, max_len=300)
    assert stats.n_in == 10 and stats.n_too_long == 1 and stats.n_encoded == 9
    assert all(len(e) <= 300 for e in examples)
    assert "t3" not in {e.id for e in examples}


def test_bad_input_is_named(tokenizers) -> None:
    tok = tokenizers["chat"]
    t = make_triples(1)[0]
    empty_cot = Triple(**{**t.__dict__, "cot": "  "})
    with pytest.raises(InputError, match="needs a non-empty cot: triple 't0'"):
        encode(empty_cot, "follow", tok)
    encode(empty_cot, "wo", tok)  # wo needs no cot
    with pytest.raises(InputError, match="unknown format"):
        encode(t, "cot-first", tok)
    no_seed = Triple(**{**t.__dict__, "seed_answer": None})
    with pytest.raises(InputError, match="needs a seed_answer"):
        encode(no_seed, "seed", tok)


def test_slow_tokenizer_is_refused() -> None:
    from training.formats import check_tokenizer

    class Slow:
        is_fast = False
        eos_token_id = 0

    with pytest.raises(InputError, match="slow tokenizer has no offset mapping"):
        check_tokenizer(Slow(), "--base /x")
