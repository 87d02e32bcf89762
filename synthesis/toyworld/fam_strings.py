"""Standalone toy families over strings (one family per task type; see core.py for `Task`)."""

from __future__ import annotations

from collections import Counter
from itertools import groupby
from random import Random

from synthesis.toyworld.core import (
    CMP,
    INT,
    STR,
    Task,
    body,
    cmp_text,
    family,
    pick,
    rand_sentence,
    rand_text,
)

SCAN = ["Go through `$a` one character at a time.", "Scan each character of `$a`.",
        "Loop over the characters of `$a`."]  # fmt: skip
SPLIT_WORDS = ["Split `$a` on whitespace to get the words.", "Break `$a` into words with .split().",
               "Get the words of `$a` (str.split with no argument)."]  # fmt: skip


@family(
    "count_chars",
    "string",
    "count the characters of a string that belong to a set",
    "count tally measure",
)
def count_chars(rng: Random) -> Task:
    mode = pick(rng, ["vowels", "letters", "letters", "punct", "digits"])
    if mode == "vowels":
        chars = pick(rng, ["aeiou", "aeiouy"])
    elif mode == "letters":
        chars = "".join(sorted(rng.sample("abcdefghilmnoprstu", rng.randint(2, 4))))
    elif mode == "punct":
        chars = "".join(rng.sample(".,!?;:-", rng.randint(2, 3)))
    else:
        chars = ""
    fold = mode in ("vowels", "letters") and rng.random() < 0.5
    src = "$a.lower()" if fold else "$a"
    if chars:
        cs = repr(chars)
        cond = f"ch in {cs}"
        what = [f"the number of characters in `$a` that are one of {cs}",
                f"how many characters of `$a` belong to the set {cs}"]  # fmt: skip
        test = [f"Count a character when it is in {cs}.", f"Add one for every character found in {cs}.",
                f"Membership test: ch in {cs}."]  # fmt: skip
    else:
        cs, cond = "", "ch.isdigit()"
        what = [
            "the number of digit characters in `$a`",
            "how many characters of `$a` are digits 0-9",
        ]
        test = ["Count the characters with ch.isdigit().", "Add one for each digit character."]
    notes = (
        [["Upper- and lower-case letters count the same.", "Matching ignores case."]]
        if fold
        else []
    )
    steps = [SCAN] + (
        [["Lowercase `$a` first so case does not matter.", "Compare in lower case (.lower())."]]
        if fold
        else []
    )
    steps += [test, ["Return the count (0 for an empty string).", "The total is the answer."]]

    def make(fold_case: bool):
        def ref(s: str) -> int:
            t = s.lower() if fold_case else s
            return sum(1 for ch in t if (ch in chars if chars else ch.isdigit()))

        return ref

    alphabet = (chars * 3 + (chars.upper() * 2 if fold or mode != "punct" else "")) or "0123456789"
    alphabet += "bxyzmq TQ.,!37"
    return Task(
        params={"mode": mode, "chars": chars, "fold": fold},
        args=[STR], returns="int", what=what, notes=notes, steps=steps,
        bodies={
            "loop": body(f"""
                count = 0
                for ch in {src}:
                    if {cond}:
                        count += 1
                return count"""),
            "builtin": f"return sum(1 for ch in {src} if {cond})",
            "comp": f"return len([ch for ch in {src} if {cond}])",
        },
        ref=make(fold), gen=lambda r: (rand_text(r, alphabet, 0, 16),), edges=[("",)],
        consts=[cs] if cs else [], doc=["Count matching characters in `$a`.", "Return how many characters match."],
        tweaks=[make(not fold)] if mode in ("vowels", "letters") else [],
        remarks=["Count with a generator.", "One pass over the string."],
    )  # fmt: skip


@family(
    "caesar_shift",
    "string",
    "shift lowercase letters around the alphabet",
    "encode shift rotate convert",
)
def caesar_shift(rng: Random) -> Task:
    k = rng.randint(1, 25)
    forward = rng.random() < 0.6
    shift = k if forward else 26 - k
    way, wrap = ("forward", "z wraps to a") if forward else ("backward", "a wraps to z")
    sign = "+" if forward else "-"
    what = [f"`$a` with every lowercase letter shifted {k} places {way} in the alphabet ({wrap}); other characters unchanged",
            f"the Caesar shift of `$a` by {k} {way}: lowercase letters move {k} places {way}, wrapping around, and anything else stays"]  # fmt: skip
    steps = [["Handle each character of `$a` separately.", "Build the output one character at a time."],
             [f"For a lowercase letter at alphabet position p, the new position is (p {sign} {k}) % 26.",
              f"Shift lowercase letters by {k} {way}, wrapping past the end of the alphabet.",
              f"Letters move {k} steps {way}; {wrap}."],
             ["Leave every other character as it is.", "Non-letters pass through unchanged."],
             ["Join the characters into the result.", "Return the joined string."]]  # fmt: skip

    def make(n: int):
        def ref(s: str) -> str:
            return "".join(chr((ord(c) - 97 + n) % 26 + 97) if "a" <= c <= "z" else c for c in s)

        return ref

    off = f"{sign} {k}"
    return Task(
        params={"k": k, "forward": forward}, args=[STR], returns="str", what=what, steps=steps,
        bodies={
            "loop": body(f"""
                out = []
                for ch in $a:
                    if 'a' <= ch <= 'z':
                        out.append(chr((ord(ch) - ord('a') {off}) % 26 + ord('a')))
                    else:
                        out.append(ch)
                return ''.join(out)"""),
            "comp": f"return ''.join(chr((ord(ch) - 97 {off}) % 26 + 97) if 'a' <= ch <= 'z' else ch for ch in $a)",
            "builtin": body(f"""
                letters = 'abcdefghijklmnopqrstuvwxyz'
                table = str.maketrans(letters, letters[{shift}:] + letters[:{shift}])
                return $a.translate(table)"""),
        },
        ref=make(shift), gen=lambda r: (rand_text(r, "abcdefghijklmnopqrstuvwxyz  !", 0, 14),),
        edges=[("",), ("z",)], consts=[str(k)], doc=[f"Shift letters of `$a` by {k} {way}.", "Caesar-shift lowercase letters."],
        tweaks=[make(shift + 1), make(shift - 1)], depth=2,
        remarks=["Rotate lowercase letters.", "A Caesar cipher."],
    )  # fmt: skip


@family("run_length", "string", "run-length encode a string", "encode compress pack")
def run_length(rng: Random) -> Task:
    count_first = rng.random() < 0.5
    omit_ones = rng.random() < 0.5
    sep = pick(rng, ["", "", "-", ",", " "])
    fold = rng.random() < 0.3
    shape = (
        "the run length followed by the character"
        if count_first
        else "the character followed by the run length"
    )
    ones = " (a run of length 1 is written as just the character)" if omit_ones else ""
    sep_text = f"pieces separated by {sep!r}" if sep else "pieces written back to back"
    what = [f"the run-length encoding of `$a`{' after lowercasing it' if fold else ''}: each maximal run of equal characters becomes {shape}{ones}, {sep_text}",
            f"a compressed form of `$a`{' (lowercased first)' if fold else ''} where every run of a repeated character is written as {shape}{ones}, {sep_text}"]  # fmt: skip
    steps = ([["Lowercase `$a` first.", "Work on `$a`.lower()."]] if fold else []) + [
        ["Group `$a` into maximal runs of the same character.", "Walk through `$a` and measure each run of equal characters."],
        [f"Write each run as {shape}{ones}.", f"Encode a run as {shape}{ones}."],
        [f"Join the pieces with {sep!r}." if sep else "Concatenate the pieces with nothing in between.",
         f"Put {sep!r} between runs." if sep else "Glue the pieces together directly."],
        ["An empty string gives an empty result.", "Return the joined text ('' for '')."],
    ]  # fmt: skip
    cnt = "(str(n) if n > 1 else '')" if omit_ones else "str(n)"

    def piece(ch: str) -> str:
        return f"{cnt} + {ch}" if count_first else f"{ch} + {cnt}"

    src = "$a.lower()" if fold else "$a"

    def ref(s: str) -> str:
        s = s.lower() if fold else s
        parts = []
        for ch, grp in groupby(s):
            n = len(list(grp))
            c = str(n) if n > 1 or not omit_ones else ""
            parts.append(c + ch if count_first else ch + c)
        return sep.join(parts)

    def gen(r: Random) -> tuple:
        letters = r.sample("abcxyzAB", 3)
        return ("".join(r.choice(letters) * r.randint(1, 4) for _ in range(r.randint(0, 5))),)

    pre = "text = $a.lower()\n" if fold else ""
    src_var = "text" if fold else "$a"
    return Task(
        params={"count_first": count_first, "omit_ones": omit_ones, "sep": sep, "fold": fold},
        args=[STR], returns="str", what=what, steps=steps,
        bodies={
            "loop": pre + body(f"""
                parts = []
                i = 0
                while i < len({src_var}):
                    j = i
                    while j < len({src_var}) and {src_var}[j] == {src_var}[i]:
                        j += 1
                    n = j - i
                    parts.append({piece(f"{src_var}[i]")})
                    i = j
                return {sep!r}.join(parts)"""),
            "builtin": body(f"""
                parts = []
                for ch, group in groupby({src}):
                    n = len(list(group))
                    parts.append({piece("ch")})
                return {sep!r}.join(parts)"""),
        },
        ref=ref, gen=gen, edges=[("",), ("a",)], consts=[repr(sep)] if sep else [],
        doc=["Run-length encode `$a`.", "Compress runs of repeated characters."],
        imports=("from itertools import groupby",), depth=2 + fold,
        remarks=["Run-length encoding.", "Group equal neighbours."],
    )  # fmt: skip


TRANSFORMS = {
    "none": ("as they are", "w", lambda w: w),
    "upper": ("in upper case", "w.upper()", str.upper),
    "reverse": ("reversed", "w[::-1]", lambda w: w[::-1]),
    "capitalize": ("capitalized", "w.capitalize()", str.capitalize),
}


@family(
    "words_by_length",
    "string",
    "select the words of a sentence by length, transformed",
    "select filter collect pick",
)
def words_by_length(rng: Random) -> Task:
    op = pick(rng, [">", ">=", "<", "=="])
    k = rng.randint(2, 6)
    tname = pick(rng, list(TRANSFORMS))
    tdesc, texpr, tfn = TRANSFORMS[tname]
    cond = cmp_text(op, k)
    what = [f"the list of words of `$a` (split on whitespace) whose length is {cond[0]}, {tdesc}, in their original order",
            f"a list with each word of `$a` that has length {cond[-1]}, {tdesc}, keeping the original order"]  # fmt: skip
    steps = [SPLIT_WORDS,
             [f"Keep a word w when len(w) {op} {k}.", f"Select the words whose length is {cond[0]}.", f"Filter on len(w) {op} {k}."],
             [f"Keep each selected word {tdesc}." if tname == "none" else f"Return each selected word {tdesc} ({texpr}).",
              "No change to the words themselves." if tname == "none" else f"Map every kept word w to {texpr}."],
             ["Return them as a list, in order.", "Collect the results into a list."]]  # fmt: skip

    def make(kk: int):
        return lambda s: [tfn(w) for w in s.split() if CMP[op](len(w), kk)]

    mapped = "" if tname == "none" else f"map(lambda w: {texpr}, "
    close = "" if tname == "none" else ")"
    return Task(
        params={"op": op, "k": k, "transform": tname}, args=[STR], returns="list[str]", what=what, steps=steps,
        bodies={
            "loop": body(f"""
                result = []
                for w in $a.split():
                    if len(w) {op} {k}:
                        result.append({texpr})
                return result"""),
            "comp": f"return [{texpr} for w in $a.split() if len(w) {op} {k}]",
            "builtin": f"return list({mapped}filter(lambda w: len(w) {op} {k}, $a.split()){close})",
        },
        ref=make(k), gen=lambda r: (rand_sentence(r, 0, 7),), edges=[("",)], consts=[str(k)],
        doc=["Select words of `$a` by length.", f"Words with length {op} {k}."],
        tweaks=[make(k + 1), make(k - 1)], depth=2,
        remarks=["Filter the split words.", "Split, filter, map."],
    )  # fmt: skip


@family(
    "transform_words",
    "string",
    "rewrite the long (or short) words of a sentence",
    "transform rewrite convert format",
)
def transform_words(rng: Random) -> Task:
    op = pick(rng, [">=", "<", ">"])
    k = rng.randint(3, 6)
    tname = pick(rng, ["upper", "reverse", "capitalize"])
    tdesc, texpr, tfn = TRANSFORMS[tname]
    cond = cmp_text(op, k)
    what = [f"`$a` with every word whose length is {cond[0]} {tdesc} and the other words unchanged, words joined by single spaces",
            f"a copy of `$a` in which words of length {cond[-1]} are {tdesc}; split on whitespace and join the words with one space"]  # fmt: skip
    steps = [SPLIT_WORDS,
             [f"A word w with len(w) {op} {k} becomes {texpr}.", f"Words whose length is {cond[0]} are {tdesc}.",
              f"For each word test len(w) {op} {k}; if true use {texpr}."],
             ["Other words stay as they are.", "Words failing the test are unchanged."],
             ["Join the words with single spaces.", "Return ' '.join of the words."]]  # fmt: skip

    def make(kk: int):
        return lambda s: " ".join(tfn(w) if CMP[op](len(w), kk) else w for w in s.split())

    return Task(
        params={"op": op, "k": k, "transform": tname}, args=[STR], returns="str", what=what, steps=steps,
        bodies={
            "loop": body(f"""
                words = []
                for w in $a.split():
                    if len(w) {op} {k}:
                        w = {texpr}
                    words.append(w)
                return ' '.join(words)"""),
            "comp": f"return ' '.join({texpr} if len(w) {op} {k} else w for w in $a.split())",
        },
        ref=make(k), gen=lambda r: (rand_sentence(r, 0, 6),), edges=[("",)], consts=[str(k)],
        doc=["Transform some words of `$a`.", f"Rewrite words with length {op} {k}."],
        tweaks=[make(k + 1), make(k - 1)], depth=2, remarks=["Map over the words.", "Conditional word map."],
    )  # fmt: skip


@family(
    "strip_chars",
    "string",
    "remove (or keep only) the characters of a set",
    "clean strip remove tidy",
)
def strip_chars(rng: Random) -> Task:
    chars = "".join(rng.sample("aeiou.,!-_ xyz", rng.randint(2, 3)))
    keep = rng.random() < 0.3
    cs = repr(chars)
    if keep:
        what = [
            f"`$a` with only the characters that are in {cs} kept, in order",
            f"the characters of `$a` that belong to {cs}, as a string",
        ]
        cond, test = f"ch in {cs}", f"ch in {cs}"
    else:
        what = [
            f"`$a` with every character in {cs} removed",
            f"a copy of `$a` without any of the characters {cs}",
        ]
        cond, test = f"ch not in {cs}", f"ch not in {cs}"
    steps = [SCAN, [f"Keep a character only if {test}.", f"Test each character against {cs}."],
             ["Join the kept characters.", "Return them joined into a string."]]  # fmt: skip

    def make(cset: str):
        return lambda s: "".join(c for c in s if (c in cset) == keep)

    bodies = {
        "loop": body(f"""
            out = ''
            for ch in $a:
                if {cond}:
                    out += ch
            return out"""),
        "comp": f"return ''.join(ch for ch in $a if {cond})",
    }  # fmt: skip
    if not keep:
        bodies["builtin"] = f"return $a.translate(str.maketrans('', '', {cs}))"
    return Task(
        params={"chars": chars, "keep": keep}, args=[STR], returns="str", what=what, steps=steps, bodies=bodies,
        ref=make(chars), gen=lambda r: (rand_text(r, chars * 3 + "abcdexyz !.,", 0, 14),), edges=[("",)],
        consts=[cs], doc=["Filter the characters of `$a`.", "Drop unwanted characters."],
        tweaks=[make(chars[:-1]), make(chars[1:])], remarks=["Character filter.", "Keep what passes the test."],
    )  # fmt: skip


@family(
    "char_counts",
    "string",
    "count characters into a dict, with a minimum count",
    "count tally index map",
)
def char_counts(rng: Random) -> Task:
    m = rng.randint(1, 3)
    skip = pick(rng, [" ", " .,", "aeiou ", "-"])
    fold = rng.random() < 0.4
    sk = repr(skip)
    what = [f"a dict mapping each character of `$a`{' (lowercased)' if fold else ''} that is not in {sk} and occurs at least {m} time{'s' if m > 1 else ''} to its number of occurrences",
            f"the counts of the characters of `$a`{', case-insensitively' if fold else ''}, ignoring those in {sk}, keeping only characters seen at least {m} time{'s' if m > 1 else ''}, as a dict"]  # fmt: skip
    steps = ([["Lowercase `$a` first.", "Count case-insensitively (.lower())."]] if fold else []) + [
        [f"Count every character that is not in {sk}.", f"Tally characters, skipping {sk}."],
        [f"Keep the entries with a count of at least {m}.", f"Drop characters seen fewer than {m} time{'s' if m > 1 else ''}."],
        ["Return the dict.", "The filtered counts are the answer ({} for an empty string)."],
    ]  # fmt: skip
    src = "$a.lower()" if fold else "$a"

    def make(mm: int):
        def ref(s: str) -> dict:
            c = Counter(ch for ch in (s.lower() if fold else s) if ch not in skip)
            return {ch: n for ch, n in c.items() if n >= mm}

        return ref

    return Task(
        params={"m": m, "skip": skip, "fold": fold}, args=[STR], returns="dict[str, int]", what=what, steps=steps,
        bodies={
            "loop": body(f"""
                counts = {{}}
                for ch in {src}:
                    if ch not in {sk}:
                        counts[ch] = counts.get(ch, 0) + 1
                return {{ch: n for ch, n in counts.items() if n >= {m}}}"""),
            "builtin": body(f"""
                counts = Counter(ch for ch in {src} if ch not in {sk})
                return {{ch: n for ch, n in counts.items() if n >= {m}}}"""),
        },
        ref=make(m), gen=lambda r: (rand_text(r, "aabbcAB e-.,", 0, 14),), edges=[("",)],
        consts=[str(m), sk], doc=["Count characters of `$a`.", "Character histogram with a floor."],
        tweaks=[make(m + 1)] + ([make(m - 1)] if m > 1 else []), imports=("from collections import Counter",),
        depth=2 + fold, remarks=["Count, then filter.", "A dict of counts."],
    )  # fmt: skip


@family(
    "most_common_char",
    "string",
    "the most frequent character with a tie rule",
    "find pick get detect",
)
def most_common_char(rng: Random) -> Task:
    alpha = rng.random() < 0.5
    skip = pick(rng, [" ", " .,!", "aeiou "])
    default = pick(rng, ["", "?", "-", "#"])
    sk, dft = repr(skip), repr(default)
    tie = "the alphabetically smallest one" if alpha else "the one that appears first"
    what = [f"the character that occurs most often in `$a`, not counting characters in {sk}; on a tie return {tie}; return {dft} when nothing is counted",
            f"the most frequent character of `$a` (characters in {sk} are ignored, ties go to {tie}, and {dft} is returned if no character counts)"]  # fmt: skip
    steps = [[f"Ignore the characters in {sk}.", f"Skip anything in {sk}."],
             ["Count how often each remaining character occurs.", "Tally the remaining characters."],
             [f"Pick the highest count; break ties by taking {tie}.", f"Highest count wins, ties -> {tie}."],
             [f"If nothing was counted, return {dft}.", f"Empty case: {dft}."]]  # fmt: skip

    def make(by_alpha: bool):
        def ref(s: str) -> str:
            chars = [c for c in s if c not in skip]
            if not chars:
                return default
            order = sorted(set(chars)) if by_alpha else list(dict.fromkeys(chars))
            return max(order, key=chars.count)

        return ref

    order = "sorted(set(chars))" if alpha else "chars"
    return Task(
        params={"alpha": alpha, "skip": skip, "default": default}, args=[STR], returns="str", what=what, steps=steps,
        bodies={
            "loop": body(f"""
                best, best_count = {dft}, 0
                for ch in {'sorted(set($a))' if alpha else '$a'}:
                    if ch in {sk}:
                        continue
                    n = $a.count(ch)
                    if n > best_count:
                        best, best_count = ch, n
                return best"""),
            "builtin": body(f"""
                chars = [ch for ch in $a if ch not in {sk}]
                if not chars:
                    return {dft}
                return max({order}, key=chars.count)"""),
        },
        ref=make(alpha), gen=lambda r: (rand_text(r, "abcab cdd.!e", 0, 12),), edges=[("",), ("  ",)],
        consts=[sk, dft] if default else [sk], doc=["Most common character of `$a`.", "Find the modal character."],
        tweaks=[make(not alpha)], depth=2, remarks=["max with key=count.", "Count and compare."],
    )  # fmt: skip


@family("acronym", "string", "acronym from the words of a sentence", "abbreviate build make format")
def acronym(rng: Random) -> Task:
    k = rng.randint(2, 5)
    sep = pick(rng, ["", ".", "-", " "])
    upper = rng.random() < 0.7
    case, method = ("upper", "upper") if upper else ("lower", "lower")
    what = [f"the acronym of `$a`: the first letter of every word with at least {k} letters, in {case} case, joined by {sep!r}",
            f"a string made of the {case}-case initials of the words of `$a` that have {k} or more letters, separated by {sep!r}"]  # fmt: skip
    steps = [SPLIT_WORDS,
             [f"Keep the words with len(w) >= {k}.", f"Skip words shorter than {k} letters."],
             [f"Take the first letter of each kept word and make it {case} case.", f"Initials: w[0].{method}()."],
             [f"Join the initials with {sep!r}.", f"Return {sep!r}.join of the initials."]]  # fmt: skip

    def make(kk: int):
        return lambda s: sep.join(getattr(w[0], method)() for w in s.split() if len(w) >= kk)

    return Task(
        params={"k": k, "sep": sep, "upper": upper}, args=[STR], returns="str", what=what, steps=steps,
        bodies={
            "loop": body(f"""
                letters = []
                for w in $a.split():
                    if len(w) >= {k}:
                        letters.append(w[0].{method}())
                return {sep!r}.join(letters)"""),
            "comp": f"return {sep!r}.join(w[0].{method}() for w in $a.split() if len(w) >= {k})",
        },
        ref=make(k), gen=lambda r: (rand_sentence(r, 0, 6, caps=0.3),), edges=[("",)],
        consts=[str(k), repr(sep)], doc=["Acronym of `$a`.", "Initials of the longer words."],
        tweaks=[make(k + 1), make(k - 1)], depth=2, remarks=["Initials joined.", "First letters."],
    )  # fmt: skip


@family(
    "count_substring",
    "string",
    "count occurrences of a pattern, overlapping or not",
    "count find scan tally",
)
def count_substring(rng: Random) -> Task:
    letters = rng.sample("abxyo", 2)
    p = "".join(rng.choice(letters) for _ in range(rng.randint(2, 3)))
    # only a pattern that can overlap itself ("aa", "aba") makes the overlap rule matter
    can_overlap = any(p[i:] == p[: len(p) - i] for i in range(1, len(p)))
    overlap = can_overlap and rng.random() < 0.6
    kind = "possibly overlapping" if overlap else "non-overlapping"
    n = len(p)
    what = [
        f"the number of {kind} occurrences of {p!r} in `$a`",
        f"how many times {p!r} occurs in `$a`, counting {kind} matches",
    ]
    steps = [[f"Look for {p!r} at every position of `$a`.", f"Search `$a` for the pattern {p!r}."],
             ["After a match, continue from the next position, so matches may overlap." if overlap
              else f"After a match, jump past it ({n} characters), so matches never overlap.",
              "Overlaps count." if overlap else "Overlapping matches do not count."],
             ["Return the number of matches.", "The count is the answer."]]  # fmt: skip

    def make(ov: bool):
        def ref(s: str) -> int:
            count, i = 0, s.find(p)
            while i != -1:
                count += 1
                i = s.find(p, i + (1 if ov else n))
            return count

        return ref

    step = "1" if overlap else str(n)
    bodies = {
        "loop": body(f"""
            count = 0
            start = $a.find({p!r})
            while start != -1:
                count += 1
                start = $a.find({p!r}, start + {step})
            return count"""),
    }  # fmt: skip
    if overlap:
        bodies["comp"] = (
            f"return sum(1 for i in range(len($a) - {n - 1}) if $a[i:i + {n}] == {p!r})"
        )
    else:
        bodies["builtin"] = f"return $a.count({p!r})"
    return Task(
        params={"p": p, "overlap": overlap}, args=[STR], returns="int", what=what, steps=steps, bodies=bodies,
        ref=make(overlap), gen=lambda r: (rand_text(r, "".join(letters) * 3 + "c", 0, 14),), edges=[("",), (p,)],
        consts=[repr(p)], doc=[f"Count {p!r} in `$a`.", "Count pattern matches."],
        tweaks=[make(not overlap)] if can_overlap else [], depth=1 + overlap, remarks=["str.find in a loop.", "Count matches."],
    )  # fmt: skip


@family(
    "mask_string",
    "string",
    "mask all but the first or last k characters",
    "mask hide redact format",
)
def mask_string(rng: Random) -> Task:
    k = rng.randint(1, 5)
    tail = rng.random() < 0.6
    mask = pick(rng, ["*", "#", "x", "-"])
    mk = repr(mask)
    side = "last" if tail else "first"
    what = [f"`$a` with every character except the {side} {k} replaced by {mk} (a string of at most {k} characters is unchanged)",
            f"a masked copy of `$a`: keep the {side} {k} characters and write {mk} in place of each other character"]  # fmt: skip
    steps = [[f"The {side} {k} characters stay visible.", f"Keep the {side} {k} characters as they are."],
             [f"Every other character becomes {mk}.", f"Replace the rest with {mk}, one per character."],
             [f"If `$a` has {k} or fewer characters, nothing is masked.", "Short strings come back unchanged."]]  # fmt: skip

    def make(kk: int):
        if tail:
            return lambda s: mask * max(len(s) - kk, 0) + s[-kk:] if s else ""
        return lambda s: s[:kk] + mask * max(len(s) - kk, 0)

    if tail:
        builtin = f"return {mk} * (len($a) - {k}) + $a[-{k}:]"
        cond = f"i >= len($a) - {k}"
    else:
        builtin = f"return $a[:{k}] + {mk} * (len($a) - {k})"
        cond = f"i < {k}"
    return Task(
        params={"k": k, "tail": tail, "mask": mask}, args=[STR], returns="str", what=what, steps=steps,
        bodies={
            "builtin": builtin,
            "comp": f"return ''.join(ch if {cond} else {mk} for i, ch in enumerate($a))",
            "loop": body(f"""
                out = ''
                for i, ch in enumerate($a):
                    out += ch if {cond} else {mk}
                return out"""),
        },
        ref=make(k), gen=lambda r: (rand_text(r, "0123456789abcd", 0, 12),), edges=[("",)],
        consts=[str(k), mk], doc=["Mask `$a`.", f"Hide all but {k} characters."],
        tweaks=[make(k + 1), make(k - 1)] if k > 1 else [make(k + 1)], remarks=["String slicing.", "Mask the rest."],
    )  # fmt: skip


@family(
    "alternate_case",
    "string",
    "upper-case the characters at positions i % k == r",
    "format style convert transform",
)
def alternate_case(rng: Random) -> Task:
    k = rng.randint(2, 5)
    r = rng.randrange(k)
    up = rng.random() < 0.6
    hit, other = ("upper", "lower") if up else ("lower", "upper")
    what = [f"`$a` with the characters at positions i where i % {k} == {r} in {hit} case and every other character in {other} case",
            f"a copy of `$a` where index i is {hit}-cased if i % {k} == {r} and {other}-cased otherwise"]  # fmt: skip
    steps = [["Walk over `$a` with the index of each character.", "Use enumerate to get (i, ch)."],
             [f"If i % {k} == {r}, write ch.{hit}().", f"Positions with i % {k} == {r} become {hit} case."],
             [f"Every other position gets ch.{other}().", f"All other characters are {other}-cased."],
             ["Join the characters.", "Return the joined string."]]  # fmt: skip

    def make(kk: int, rr: int):
        def ref(s: str) -> str:
            return "".join(getattr(c, hit if i % kk == rr else other)() for i, c in enumerate(s))

        return ref

    cond = f"i % {k} == {r}"
    return Task(
        params={"k": k, "r": r, "up": up}, args=[STR], returns="str", what=what, steps=steps,
        bodies={
            "comp": f"return ''.join(ch.{hit}() if {cond} else ch.{other}() for i, ch in enumerate($a))",
            "loop": body(f"""
                chars = []
                for i, ch in enumerate($a):
                    if {cond}:
                        chars.append(ch.{hit}())
                    else:
                        chars.append(ch.{other}())
                return ''.join(chars)"""),
        },
        ref=make(k, r), gen=lambda rr: (rand_text(rr, "abcdeFGHij k", 0, 12),), edges=[("",)],
        consts=[str(k), str(r)], doc=["Alternate the case of `$a`.", "Positional case change."],
        tweaks=[make(k, (r + 1) % k), make(k + 1, r)], remarks=["enumerate and a condition.", "Index-based case."],
    )  # fmt: skip


def _is_int(field: str) -> bool:
    return field.isdigit() or (field[:1] == "-" and field[1:].isdigit())


@family(
    "parse_numbers",
    "string",
    "parse integer fields out of a delimited string and aggregate",
    "parse read extract sum",
)
def parse_numbers(rng: Random) -> Task:
    sep = pick(rng, [",", ";", "|", " ", "/"])
    agg = pick(rng, ["sum", "count", "max", "list"])
    c = pick(rng, [None, None, rng.randint(-5, 15)])
    sp = repr(sep)
    above = f" and greater than {c}" if c is not None else ""
    agg_text = {
        "sum": "the sum",
        "count": "the number",
        "max": "the largest (None if there is none)",
        "list": "the list, in order,",
    }[agg]
    what = [f"{agg_text} of the fields of `$a` that are integers{above}, where `$a` holds fields separated by {sp} and a field is an integer if it is digits with an optional leading '-'",
            f"{agg_text} of the integer fields{above} in `$a` (fields are separated by {sp}; fields that are not plain integers such as 'x' or '3a' are skipped)"]  # fmt: skip
    steps = [[f"Split `$a` on {sp}.", f"Fields come from $a.split({sp})."],
             ["Keep a field if it is digits, optionally after one leading '-', and convert it with int().",
              "Skip fields that are not integers (check isdigit on the part after an optional '-')."]]  # fmt: skip
    if c is not None:
        steps.append([f"Keep only numbers greater than {c}.", f"Filter with n > {c}."])
    steps.append({"sum": ["Return their sum (0 if none).", "Add them up; no numbers gives 0."],
                  "count": ["Return how many there are.", "Count them."],
                  "max": ["Return the largest, or None if there is none.", "max(...) with None for the empty case."],
                  "list": ["Return them as a list in order.", "The list of numbers is the answer."]}[agg])  # fmt: skip

    def make(cc: int | None):
        def ref(s: str) -> object:
            nums = [int(f) for f in s.split(sep) if _is_int(f)]
            if cc is not None:
                nums = [n for n in nums if n > cc]
            return {
                "sum": sum,
                "count": len,
                "max": lambda xs: max(xs) if xs else None,
                "list": list,
            }[agg](nums)

        return ref

    ok = "f.isdigit() or (f[:1] == '-' and f[1:].isdigit())"
    guard = f"({ok}) and int(f) > {c}" if c is not None else ok
    final = {
        "sum": "sum(nums)",
        "count": "len(nums)",
        "max": "max(nums) if nums else None",
        "list": "nums",
    }[agg]
    acc = {"sum": ("total = 0", "total += value", "total"), "count": ("total = 0", "total += 1", "total"),
           "max": ("best = None", "if best is None or value > best:\n            best = value", "best"),
           "list": ("found = []", "found.append(value)", "found")}[agg]  # fmt: skip
    cond = f"\n        if value > {c}:" if c is not None else ""
    ind = "    " if c is not None else ""
    update = acc[1].replace("\n", "\n" + ind)
    loop = (f"{acc[0]}\nfor field in $a.split({sp}):\n    if field.isdigit() or (field[:1] == '-' and field[1:].isdigit()):\n"
            f"        value = int(field){cond}\n        {ind}{update}\nreturn {acc[2]}")  # fmt: skip
    returns = {"sum": "int", "count": "int", "max": "int | None", "list": "list[int]"}[agg]

    def gen(r: Random) -> tuple:
        fields = [str(r.randint(-20, 40)) if r.random() < 0.6 else pick(r, ["x", "n/a", "", "abc", "3a", "-", "7b"])
                  for _ in range(r.randint(0, 7))]  # fmt: skip
        return (sep.join(fields),)

    return Task(
        params={"sep": sep, "agg": agg, "c": c}, args=[STR], returns=returns, what=what, steps=steps,
        bodies={"comp": f"nums = [int(f) for f in $a.split({sp}) if {guard}]\nreturn {final}", "loop": loop},
        ref=make(c), gen=gen, edges=[("",)], consts=[sp] + ([str(c)] if c is not None else []),
        doc=["Parse the integers in `$a`.", f"Aggregate the integer fields ({agg})."],
        tweaks=[make(c + 1), make(c - 1)] if c is not None else [], depth=2 + (c is not None),
        remarks=["Split, parse, aggregate.", "Skip the non-numeric fields."],
    )  # fmt: skip


@family("parse_kv", "string", "parse key/value pairs into a dict", "parse read load decode")
def parse_kv(rng: Random) -> Task:
    pair = pick(rng, [";", ",", "&", "|"])
    kv = pick(rng, ["=", ":", "->"])
    add = rng.random() < 0.4
    ps, ks = repr(pair), repr(kv)
    dup = "its values are added up" if add else "the last value wins"
    what = [f"a dict built from `$a`, which holds pairs of the form key{kv}value (key and value split by {ks}) separated by {ps}; values are integers, a repeated key means {dup}, and an empty string gives an empty dict",
            f"the dict encoded in `$a`: entries separated by {ps}, each entry a key and an integer value joined by {ks} (for a repeated key {dup}; '' gives {{}})"]  # fmt: skip
    steps = [["An empty `$a` gives an empty dict.", "Return {} right away for ''."],
             [f"Split `$a` on {ps} to get the entries.", f"Entries are separated by {ps}."],
             [f"Split each entry on {ks} into key and value; convert the value with int().", f"key, value = entry.split({ks})."],
             ["Add the value to the key's running total." if add else "Store the value; a later duplicate overwrites an earlier one.",
              "Sum duplicate keys." if add else "Last occurrence wins."]]  # fmt: skip

    def make(summing: bool):
        def ref(s: str) -> dict:
            out: dict = {}
            if s:
                for item in s.split(pair):
                    k, v = item.split(kv)
                    out[k] = out.get(k, 0) + int(v) if summing else int(v)
            return out

        return ref

    store = "result[key] = result.get(key, 0) + int(value)" if add else "result[key] = int(value)"
    bodies = {
        "loop": body(f"""
            result = {{}}
            if not $a:
                return result
            for entry in $a.split({ps}):
                key, value = entry.split({ks})
                {store}
            return result"""),
    }  # fmt: skip
    if not add:
        bodies["comp"] = (
            f"if not $a:\n    return {{}}\nreturn {{k: int(v) for k, v in (e.split({ks}) for e in $a.split({ps}))}}"
        )

    def gen(r: Random) -> tuple:
        keys = r.sample(["a", "b", "c", "x", "y", "id", "n"], 3)
        return (
            pair.join(f"{r.choice(keys)}{kv}{r.randint(-5, 30)}" for _ in range(r.randint(0, 5))),
        )

    return Task(
        params={"pair": pair, "kv": kv, "add": add}, args=[STR], returns="dict[str, int]", what=what, steps=steps,
        bodies=bodies, ref=make(add), gen=gen, edges=[("",)], consts=[ps, ks],
        doc=["Parse `$a` into a dict.", "Decode key/value pairs."], tweaks=[make(not add)], depth=2,
        remarks=["Two splits.", "Split entries, then keys from values."],
    )  # fmt: skip


@family(
    "repeat_pattern",
    "string",
    "build a string by repeating a pattern n times with a separator",
    "build make repeat render",
)
def repeat_pattern(rng: Random) -> Task:
    unit = "".join(rng.sample("abcxyz*-#", rng.randint(1, 3)))
    sep = pick(rng, ["", " ", "-", ",", "|"])
    cap = rng.randint(4, 9)
    us, ss = repr(unit), repr(sep)
    what = [f"the string {us} repeated `$a` times with {ss} between repetitions, using at most {cap} repetitions ('' when `$a` <= 0)",
            f"{us} written min(`$a`, {cap}) times, separated by {ss}; an `$a` of 0 or less gives ''"]  # fmt: skip
    steps = [[f"The number of copies is min(`$a`, {cap}), and at least 0.", f"Cap the count at {cap}."],
             [f"Repeat {us} that many times.", f"Make that many copies of {us}."],
             [f"Join the copies with {ss}.", f"Put {ss} between neighbouring copies."]]  # fmt: skip

    def make(cc: int):
        return lambda n: sep.join([unit] * max(min(n, cc), 0))

    return Task(
        params={"unit": unit, "sep": sep, "cap": cap}, args=[INT], returns="str", what=what, steps=steps,
        bodies={
            "builtin": f"return {ss}.join([{us}] * max(min($a, {cap}), 0))",
            "loop": body(f"""
                parts = []
                for _ in range(min($a, {cap})):
                    parts.append({us})
                return {ss}.join(parts)"""),
        },
        ref=make(cap), gen=lambda r: (r.randint(-2, cap + 3),), edges=[(0,), (cap + 1,)],
        consts=[us, ss, str(cap)], doc=["Repeat a pattern.", f"Repeat {us} up to {cap} times."],
        tweaks=[make(cap + 1), make(cap - 1)], depth=2, remarks=["str.join over copies.", "Repeat and join."],
    )  # fmt: skip
