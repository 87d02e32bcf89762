"""Compositional identifiers for toy tasks: function names and argument names.

    namer = Namer(salt="0", heldout_fraction=0.15)
    namer.function(rng, heldout=False, hints=("count",))    # e.g. "tally_noisy_readings"
    namer.argument(rng, "ints", avoid={"x"})                # e.g. "raw_scores"

A function name is built from parts: `verb_noun`, `verb_adj_noun`, `verb_noun_suffix` or
`noun_to_noun` (hundreds of thousands of names). Its *pair* — (verb, noun), or (noun, noun) for
the `to` pattern — is held out when a salted hash of the pair falls below `heldout_fraction`:
train/val names never use a held-out pair and test/ood names always do, so a test function name
never occurred in training (the prototype's CoT-first model failed by writing a training-set
name). Argument names come from per-kind pools, optionally with an adjective prefix; keywords,
builtins and names the code already uses are never produced.
"""

from __future__ import annotations

import builtins
import hashlib
import keyword
from random import Random

VERBS = (
    "get compute calc find count collect build make gather select pick extract tally total "
    "measure derive process transform convert render format encode scan check summarize reduce "
    "fold merge combine rank order clean normalize prepare split parse read score rate evaluate "
    "estimate track apply take fetch produce emit resolve assemble tidy trim shape crunch digest "
    "inspect analyze review sift cull list group bucket index locate detect mark flag sample "
    "screen refine reshape squash pack unpack label sort filter map count_up fix adjust tune "
    "balance weigh audit profile query lookup match mine harvest prune"
).split()

ADJECTIVES = (
    "big small odd even valid active raw clean new old top low high recent daily weekly net gross "
    "final first last unique short long hot cold fresh stale main extra spare red blue green "
    "local hidden visible safe busy lucky noisy quiet rough fine sharp soft hard dark bright "
    "early late inner outer upper lower prime good bad rare common dirty empty full live dead "
    "open shut cheap pricey heavy light slow fast warm cool dry wet"
).split()

NOUNS = (
    "values scores items nums numbers readings points counts prices ages marks weights ids tokens "
    "labels codes tags keys steps levels ranks grades votes hits samples ticks pixels temps sizes "
    "lengths widths heights depths rates costs fees bids deals orders loads batches cells rows "
    "slots bins buckets seats tiles cards coins gems stars notes pages chars letters digits "
    "signals pulses frames events logs jobs tasks users players teams rounds games moves turns "
    "laps miles hours days months years amounts totals balances deposits payments bills "
    "invoices tickets visits clicks views likes shares posts comments replies messages alerts "
    "errors faults reports records entries rolls dice shots goals runs wins losses streaks "
    "bonuses penalties fines taxes wages salaries budgets quotas limits targets offsets "
    "deltas gaps spans ranges bounds edges nodes links paths routes trips stops lanes zones "
    "regions sectors blocks chunks parts pieces units modules layers channels streams feeds "
    "queues packets trades stocks bonds assets"
).split()

SUFFIXES = ("list", "data", "info", "stats", "result", "summary", "report", "values", "table")

# Argument-name pools by kind (the base noun; an adjective may be prefixed).
ARG_POOLS: dict[str, tuple[str, ...]] = {
    "ints": tuple(n for n in NOUNS if n not in {"chars", "letters", "words"})
    + ("xs", "arr", "seq", "vals", "data", "nums_in", "series", "sequence"),
    "ints2": ("others", "extras", "second", "rhs", "other_values", "partner", "ys", "b_values"),
    "words": (
        "words names tokens labels tags terms titles keys codes entries strings parts pieces "
        "items phrases fruits animals colors cities colours nouns lemmas vocab"
    ).split(),
    "str": (
        "text s line sentence phrase message msg label title caption note raw source payload "
        "record name token chunk snippet content body blurb excerpt passage line_in string"
    ).split(),
    "int": "n num number limit amount size value target upto bound top_n x".split(),
    "dict": (
        "mapping table counts scores stock inventory prices ages lookup tally ledger totals "
        "weights points marks registry book stats score_by_name count_by_key price_map "
        "age_map quantities budget"
    ).split(),
    "dict2": "other extra update overrides second patch delta additions incoming".split(),
    "grid": "grid matrix board table rows cells field mat tiles layout sheet".split(),
}
# Kinds whose names may take an adjective prefix ("raw_scores"); short names never do.
_ADJ_OK = {"ints", "words", "str", "dict", "grid"}
# Two integer bounds are named as a matched pair.
BOUND_PAIRS = (
    ("lo", "hi"),
    ("low", "high"),
    ("start", "stop"),
    ("start", "end"),
    ("first", "last"),
    ("a", "b"),
    ("begin", "end"),
    ("lower", "upper"),
    ("left", "right"),
    ("m", "n"),
)

_FORBIDDEN = set(dir(builtins)) | set(keyword.kwlist) | {"self", "cls"}


def _unit(*parts: str) -> float:
    """A deterministic number in [0, 1) from strings (stable across runs and platforms)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def usable(name: str, avoid: set[str] | frozenset[str] = frozenset()) -> bool:
    return name.isidentifier() and name not in _FORBIDDEN and name not in avoid


class Namer:
    def __init__(self, salt: str, heldout_fraction: float = 0.15) -> None:
        self.salt = salt
        self.heldout_fraction = heldout_fraction

    def pair_heldout(self, first: str, second: str) -> bool:
        return _unit("names", self.salt, first, second) < self.heldout_fraction

    def function(
        self,
        rng: Random,
        *,
        heldout: bool,
        hints: tuple[str, ...] = (),
        avoid: frozenset[str] | set[str] = frozenset(),
    ) -> str:
        """A snake_case function name whose pair is held out iff `heldout`."""
        for _ in range(1000):
            pattern = rng.random()
            noun = rng.choice(NOUNS)
            if pattern < 0.1:
                first = rng.choice(NOUNS)
                if first == noun:
                    continue
                name, pair = f"{first}_to_{noun}", (first, noun)
            else:
                verb = rng.choice(hints) if hints and rng.random() < 0.5 else rng.choice(VERBS)
                pair = (verb, noun)
                if pattern < 0.45:
                    name = f"{verb}_{noun}"
                elif pattern < 0.9:
                    name = f"{verb}_{rng.choice(ADJECTIVES)}_{noun}"
                else:
                    name = f"{verb}_{noun}_{rng.choice(SUFFIXES)}"
            if self.pair_heldout(*pair) == heldout and usable(name, avoid):
                return name
        raise RuntimeError("no usable function name found (heldout_fraction too extreme?)")

    def argument(self, rng: Random, kind: str, avoid: set[str]) -> str:
        pool = ARG_POOLS[kind]
        for _ in range(200):
            name = rng.choice(pool)
            if kind in _ADJ_OK and len(name) > 2 and rng.random() < 0.3:
                name = f"{rng.choice(ADJECTIVES)}_{name}"
            if usable(name, avoid):
                return name
        raise RuntimeError(f"no usable argument name of kind {kind!r}")

    def bounds(self, rng: Random, avoid: set[str]) -> tuple[str, str]:
        for _ in range(200):
            low, high = rng.choice(BOUND_PAIRS)
            if usable(low, avoid) and usable(high, avoid):
                return low, high
        raise RuntimeError("no usable pair of bound names")
