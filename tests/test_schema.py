"""triples.jsonl: validated on read, bad lines named by file and line, never silently dropped."""

from __future__ import annotations

import json

import pytest
from helpers import make_triples

from plumbing import InputError
from synthesis.schema import load_triples, write_triples


@pytest.fixture()
def good(tmp_path):
    return write_triples(tmp_path / "t.jsonl", make_triples(6))


def _with_line(path, lineno, text):
    lines = path.read_text().splitlines()
    lines[lineno - 1] = text
    path.write_text("\n".join(lines) + "\n")
    return path


def test_round_trip_and_split_filter(good):
    triples, report = load_triples(good)
    assert [t.id for t in triples] == [f"t{i}" for i in range(6)]
    assert triples[0] == make_triples(6)[0]
    assert report.n_loaded == 6 and not report.bad
    train, _ = load_triples(good, split="train")
    assert {t.split for t in train} == {"train"} and len(train) == 4


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"id": "x", "problem": "p"', ":3: invalid JSON"),
        ("[1, 2]", ":3: expected a JSON object, got list"),
        ('{"id": "x", "problem": "p", "cot": "", "code": "c", "tests": 5}', ":3: field 'tests'"),
        ('{"id": "x", "problem": "p", "cot": ""}', ":3: missing field 'code'"),
        ('{"id": "t0", "problem": "p", "cot": "", "code": "c"}', ":3: duplicate id 't0'"),
        (
            '{"id": "x", "problem": "p", "cot": "", "code": "c", "oops": 1}',
            "unknown field(s) 'oops'",
        ),
        (
            '{"id": "x", "problem": "p", "cot": "", "code": "c", "meta": {"split": "dev"}}',
            ":3: field 'meta.split': 'dev' is not one of",
        ),
    ],
)
def test_bad_line_is_named_and_fails(good, line, message):
    _with_line(good, 3, line)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_triples(good)


def test_skip_bad_counts_and_reports(good):
    _with_line(good, 2, "not json")
    raw = good.read_bytes().replace(b'"t4"', b'"t4\xff"')
    good.write_bytes(raw)
    triples, report = load_triples(good, skip_bad=True)
    assert len(triples) == 4 and len(report.bad) == 2
    assert ":2: invalid JSON" in report.bad[0] and "not valid UTF-8" in report.bad[1]
    assert "2 bad line(s) skipped" in report.summary()


def test_missing_file_and_write_is_atomic(tmp_path):
    with pytest.raises(InputError, match="no such triples file"):
        load_triples(tmp_path / "none.jsonl")
    out = tmp_path / "w.jsonl"

    def exploding():
        yield make_triples(1)[0]
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_triples(out, exploding())
    assert not out.exists() and not list(tmp_path.glob(".w.jsonl*"))  # nothing half-written
    write_triples(out, make_triples(2))
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["t0", "t1"]
