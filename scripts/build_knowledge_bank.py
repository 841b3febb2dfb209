"""Build the shipped knowledge bank (``src/retain_utils/data/knowledge_bank.jsonl``): the hand-written questions,
kept verbatim and first, then questions generated from data that maintained packages hold:

- chemistry: the chemical symbols of the elements (not one-letter ones, nor English words such as In), from ``periodictable``
  (pinned in requirements.txt for the tests that rebuild the bank; the package itself reads only the jsonl);
- currencies and official languages of countries and territories, from ``babel``'s CLDR data (``babel==2.18.0``,
  already pinned in requirements.txt).

The embedded SmolLM2-135M answers these in a sentence ("The official language of Uruguay is Spanish."), which
the open format's scorer reads (``tasks.mmlu.parse_open``); ``scripts/check_knowledge_bank.py`` measures its
accuracy per kind. Questions on atomic numbers were tried and left out: the model answered 0 of 20 held-out
ones, so they would cost evaluation time and could show neither gain nor forgetting.

Run once, offline, from the repository root: ``python scripts/build_knowledge_bank.py`` (``--check`` only
compares the file with what would be built). The output is committed; the package reads only the jsonl.
Every row is in MMLU's schema (question, four distinct choices, answer index, subject, optional aliases);
distractors are drawn from the same source with a generator seeded by the question, so a rebuild gives the
same file.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

BANK = Path(__file__).resolve().parent.parent / "src" / "retain_utils" / "data" / "knowledge_bank.jsonl"
GENERATED_SUBJECTS = ("chemistry", "currencies", "languages")
# symbols not asked: a one-letter symbol or an English word can stand in any sentence ("'s", "in", "as"), and the
# scorer reads sentences
WORD_SYMBOLS = {"he", "be", "no", "in", "as", "at", "am", "es", "ho", "ti", "re", "os", "pa"}

# CLDR codes that are not places people live in, or not places at all
SKIP_TERRITORIES = {"AQ", "BV", "HM", "GS", "UM", "CP", "DG", "IC", "EA", "TA", "AC", "TF", "XA", "XB", "ZZ", "EU",
                    "EZ", "UN", "QO", "CQ"}
NAME_FIXES = {"Congo - Kinshasa": "the Democratic Republic of the Congo", "Congo - Brazzaville": "the Republic of the Congo",
              "Myanmar (Burma)": "Myanmar", "Hong Kong SAR China": "Hong Kong", "Macao SAR China": "Macao",
              "Cocos (Keeling) Islands": "the Cocos Islands", "Timor-Leste": "East Timor"}
# CLDR's English names where another is the usual one: (answer, aliases)
LANGUAGE_NAMES = {"Bangla": ("Bengali", ["Bangla"]), "Norwegian Bokmål": ("Norwegian", ["Bokmål"]),
                  "Divehi": ("Dhivehi", ["Divehi", "Maldivian"]), "Kalaallisut": ("Greenlandic", ["Kalaallisut"])}
THE = ("Palestinian Territories", "Netherlands", "Philippines", "Bahamas", "Gambia", "Maldives", "Comoros", "Isle of Man",
       "British Indian Ocean Territory", "Caribbean Netherlands", "Central African Republic")


def _rng(key: str) -> random.Random:
    return random.Random(f"knowledge-bank:{key}")


def _row(question: str, answer: str, distractors: list[str], subject: str, aliases=()) -> dict:
    """A row with the answer at a seeded position among its three distractors."""
    choices = list(distractors)
    position = _rng("position:" + question).randrange(4)
    choices.insert(position, answer)
    assert len(set(choices)) == 4, choices
    row = {"question": question, "choices": choices, "answer": position, "subject": subject}
    if aliases:
        row["aliases"] = list(aliases)
    return row


def _place(name: str) -> str:
    """A territory's English name as it reads inside a sentence ("the United Kingdom", "Saint Lucia")."""
    name = NAME_FIXES.get(name, name).replace(" & Grenadines", " and the Grenadines").replace(" & ", " and ")
    name = name.replace("St. ", "Saint ")
    if name.startswith("the "):
        return name
    if name.startswith("United ") or name.endswith(("Islands", "Republic", "Emirates")) or name in THE:
        return "the " + name
    return name


def element_rows() -> list[dict]:
    import periodictable

    elements = [e for e in periodictable.elements if 1 <= e.number <= 118]
    names = {e.number: e.name.capitalize() for e in elements}
    rows = []
    for e in elements:
        if len(e.symbol) == 1 or e.symbol.lower() in WORD_SYMBOLS:
            continue
        name = names[e.number]
        others = [x.symbol for x in elements if x is not e]
        same_letter = sorted(s for s in others if s[0] == e.symbol[0])
        rng = _rng("symbol:" + name)
        pool = same_letter if len(same_letter) >= 3 else same_letter + rng.sample(sorted(set(others) - set(same_letter)), 3)
        rows.append(_row(f"What is the chemical symbol for {name.lower()}?", e.symbol, rng.sample(pool, 3), "chemistry"))
    return rows


def _territories() -> dict[str, str]:
    from babel import Locale

    names = Locale("en").territories
    out = {}
    for code, name in sorted(names.items()):
        if len(code) != 2 or not code.isalpha() or code in SKIP_TERRITORIES or name.startswith("Pseudo"):
            continue
        out[code] = _place(name)
    return out


def currency_rows() -> list[dict]:
    from babel import Locale
    from babel.numbers import get_territory_currencies

    en = Locale("en")
    answers = {}
    for code, place in _territories().items():
        currencies = get_territory_currencies(code)  # legal tender in use today, main one first
        if currencies and currencies[0] in en.currencies:
            name = en.currencies[currencies[0]].replace(" & ", " and ").replace("St. ", "Saint ")
            answers[place] = name[0].upper() + name[1:].replace(" guilder", " Guilder")
    names = sorted(set(answers.values()))
    units: dict[str, int] = {}
    for n in names:
        units[n.split()[-1].lower()] = units.get(n.split()[-1].lower(), 0) + 1
    rows = []
    for place, currency in sorted(answers.items()):
        unit = currency.split()[-1]
        # the unit alone ("yen", "lilangeni") also counts when no other currency of the bank shares it
        aliases = [unit] if len(currency.split()) > 1 and units[unit.lower()] == 1 else []
        distractors = _rng("currency:" + place).sample([n for n in names if n != currency], 3)
        rows.append(_row(f"What is the currency of {place}?", currency, distractors, "currencies", aliases))
    return rows


def language_rows() -> list[dict]:
    from babel import Locale
    from babel.languages import get_official_languages

    en = Locale("en")
    answers = {}
    for code, place in _territories().items():
        # one official language, nationally, regionally and de facto: one right answer, and no distractor that
        # is also official there
        official = get_official_languages(code, regional=True, de_facto=True)
        if len(official) == 1 and official[0] in en.languages:
            answers[place] = en.languages[official[0]]
    names = sorted(set(answers.values()))
    rows = []
    for place, language in sorted(answers.items()):
        distractors = _rng("language:" + place).sample([n for n in names if n != language], 3)
        answer, aliases = LANGUAGE_NAMES.get(language, (language, []))
        distractors = [LANGUAGE_NAMES.get(d, (d,))[0] for d in distractors]
        rows.append(_row(f"What is the official language of {place}?", answer, distractors, "languages", aliases))
    return rows


def _duplicates(row: dict, written: list[dict]) -> bool:
    """A generated question the hand-written part already asks (the same text, or the same country and kind)."""
    texts = {r["question"].lower() for r in written}
    if row["question"].lower() in texts:
        return True
    if row["subject"] in ("currencies", "languages"):
        place = row["question"].rsplit(" of ", 1)[1].rstrip("?").removeprefix("the ")
        kind = "currency" if row["subject"] == "currencies" else "language"
        return any(kind in t and place.lower() in t for t in texts)
    return False


def build(bank: Path = BANK) -> str:
    """The whole bank's text: the hand-written lines of ``bank`` (rows not of a generated subject) verbatim, then
    the generated rows, one JSON object a line."""
    lines = [line for line in bank.read_text(encoding="utf-8").splitlines() if line.strip()]
    written = [(line, json.loads(line)) for line in lines]
    written = [(line, r) for line, r in written if r.get("subject") not in GENERATED_SUBJECTS]
    rows = [r for _, r in written]
    generated = [r for r in element_rows() + currency_rows() + language_rows() if not _duplicates(r, rows)]
    return "".join(line + "\n" for line, _ in written) + "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in generated)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report whether the shipped file is up to date")
    args = parser.parse_args(argv)
    text = build()
    if args.check:
        same = BANK.read_text(encoding="utf-8") == text
        print(f"{BANK}: {'up to date' if same else 'differs from a fresh build'}")
        return 0 if same else 1
    BANK.write_text(text, encoding="utf-8")
    counts: dict[str, int] = {}
    for r in json.loads("[" + ",".join(text.splitlines()) + "]"):
        counts[r["subject"]] = counts.get(r["subject"], 0) + 1
    print(f"{BANK}: {sum(counts.values())} questions ({', '.join(f'{k} {v}' for k, v in counts.items())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
