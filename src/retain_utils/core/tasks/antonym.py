"""Antonyms: "What is the opposite of 'hot'?", answered "The answer is: <word>".

A forgetting probe besides the paper's three tasks, from a list of common word pairs (adjectives, verbs, nouns,
directions); either word of a pair is asked, the other is the answer (with a few accepted alternatives, e.g.
"large" for the opposite of "small"). Pairs are split between train and eval by their content (both words), so
neither direction of a held-out pair is trained on.
Strict rule: the word right after the last "answer is" (case-insensitive; colons, spaces, line breaks, quotes,
``**`` and an article may stand between), or, in a reply without that phrase, the word right after the first
" is " of its first line with words on it ("The opposite of "hot" is "cold"."); it must be an accepted answer,
and a hedge ("cold or warm", "cold/warm") is no answer.
Lenient rule: an accepted answer appears anywhere in the reply as a whole word (any case).
Words are matched whole and as written: "darkness" is not "dark".
SmolLM2-135M-Instruct (fp32, greedy, 48 new tokens) answers 44% of 150 held-out questions right (66 of 150;
lenient 49%, 5 cut off by the budget). It answers in a sentence ("The opposite of "hot" is "cold".") and almost
never with the asked-for answer line; about a third of its misses repeat the asked word or a form of it
("impatient" -> "impatiently").
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from .base import Example, Task, check_common, check_n, in_split, sample_items, split_of, split_seed

NAME = "antonym"
PROMPT = "What is the opposite of '{word}'? Answer in the form 'The answer is: <word>'."
EVAL_FRACTION = 0.5  # the list is small: hold out half of its pairs so that evaluation can ask 150+ questions

# "a b": a and b are opposites; "a:x,y" also accepts x and y as the opposite of a. Every word is asked in one
# pair only.
PAIRS = """
hot:chilly,cool,freezing cold:warm | big:little,tiny small:large,huge | happy:unhappy,miserable sad:glad,cheerful
fast slow:quick,rapid | young:elderly old:new | light:heavy dark:bright | open:shut closed | wet dry | full empty
hard:easy soft | early late | rich poor:wealthy | high low | strong weak | thick thin | loud:soft,silent quiet:noisy
long short:tall | clean:unclean dirty | first last | good:evil bad | black white | true false | alive dead:living
deep shallow | wide narrow:broad | brave cowardly | sharp:dull blunt | smooth rough | cheap expensive
safe:unsafe dangerous | sweet:bitter sour | beautiful ugly:pretty | clever:dumb,foolish stupid:smart,intelligent
easy:hard difficult:simple | polite rude | kind:mean,unkind cruel:compassionate,gentle | friendly:hostile unfriendly
honest dishonest | possible impossible | correct:wrong incorrect:right | left right:wrong | tight loose
near far:close | fat:thin skinny | wild tame | healthy:ill,unhealthy sick | asleep awake | public private
major minor | maximum minimum | positive negative | active:inactive passive | ancient modern:antiquated
north south | east west | inside outside | above:under,beneath below | up down | in out | top bottom
front:behind,rear back | before after | forward backward | here there | always never | everything nothing | all none
many few | more:fewer less | most least | yes no | on off | with without | push pull | give:receive take | buy sell
win lose | begin:finish,stop end:start | arrive:depart leave | come go | laugh cry | love hate | remember forget
accept:refuse reject | add:remove subtract | increase:reduce decrease | sink float | rise fall | teach learn
live die | lend borrow | attack defend | agree disagree | like dislike | appear:vanish disappear | include exclude
import export | whisper:yell,scream shout | allow:prohibit,ban,deny forbid | build:demolish destroy
hide:reveal show | lead follow | pass fail | sit stand | inhale exhale | lock unlock | pack unpack
connect disconnect | freeze:thaw melt | admit deny | obey disobey | day night | friend:foe enemy | question answer
king queen | man woman | boy girl | brother sister | father mother | son daughter | husband wife | uncle aunt
nephew niece | prince princess | actor actress | war peace | success failure | summer winter | sunrise sunset
heaven hell | victory defeat | profit loss | birth death | truth lie | joy:sadness,grief sorrow | hero villain
entrance exit | floor ceiling | teacher:pupil student | parent child | winner loser | buyer seller
employer employee | host guest | past future | plus minus | odd even | noise silence | strength weakness
wealth poverty | health:sickness,disease illness | order:disorder chaos | generous:stingy,mean,ungenerous selfish
patient impatient | careful careless | useful useless | hopeful hopeless | visible invisible | legal illegal
complete incomplete | equal unequal | fair unfair | lucky unlucky | known unknown | common:uncommon rare
usual unusual | natural:unnatural artificial | real:imaginary,unreal fake | guilty innocent | fresh:rotten stale
raw cooked | sober drunk | lazy:diligent,active hardworking | messy:neat tidy
boring:exciting interesting:uninteresting | same different | straight:crooked,bent curved | solid liquid
male female | temporary permanent | inner outer | upper lower | internal external | horizontal vertical
absent present | optimistic pessimistic | quickly slowly | often:seldom rarely | together:separately,alone apart
upstairs downstairs | indoors outdoors | input output | ascend descend | expand:shrink contract | multiply divide
plural singular | arrival departure | noon midnight | dawn dusk | spring:fall autumn | majority minority
superior inferior | junior senior | amateur professional | urban rural | predator prey | sender:recipient receiver
introvert extrovert | synonym antonym
"""


@dataclass(frozen=True)
class Pair:
    word: str  # the word asked about
    answers: tuple[str, ...]  # its opposite first, then the other accepted answers
    key: str  # the pair's content, the same for both directions


def _pairs() -> list[tuple[Pair, Pair]]:
    out = []
    for entry in PAIRS.replace("\n", " | ").split("|"):
        if not entry.strip():
            continue
        (a, _, extra_a), (b, _, extra_b) = [side.partition(":") for side in entry.split()]
        key = "|".join(sorted((a, b)))
        out.append((Pair(a, (b, *filter(None, extra_a.split(","))), key),
                    Pair(b, (a, *filter(None, extra_b.split(","))), key)))
    return out


PAIR_LIST = _pairs()


# ---------------------------------------------------------------------------------------------- answers

_PHRASE = re.compile(r"answer is", re.I)
_IS = re.compile(r"\bis\b", re.I)
_WORD = re.compile(r"[\s:*\"'`_(\[\u2018\u2019\u201c\u201d]*(?:(?:the|an|a)\s+)?([a-z]+)")
_HEDGE = re.compile(r"[\s.,\"'`*\u2018\u2019\u201c\u201d]*(?:or\b|/)")


def _word_after(text: str) -> str | None:
    """The word ``text`` starts with (after quotes, ``**``, an article); None when none or hedged."""
    text = text.lower()
    m = _WORD.match(text)
    if m is None or _HEDGE.match(text, m.end()):
        return None
    return m.group(1)


def parse_opposite(response: str) -> str | None:
    """The word the reply gives as the opposite, lowercase (see the module's strict rule), or None."""
    found = None
    for found in _PHRASE.finditer(response):
        pass
    if found is not None:
        return _word_after(response[found.end():found.end() + 400])
    line = next((line for line in response.splitlines() if re.search(r"[A-Za-z]", line)), "")
    m = _IS.search(line)
    return _word_after(line[m.end():]) if m else None


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


_FORMS = [
    "The opposite of '{w}' is '{a}'.",
    "{A} is the opposite of {w}.",
    "{W} and {a} are opposites.",
    "The word that means the opposite of {w} is {a}.",
    "The antonym of {w} is {a}.",
    "{W} is one end, {a} the other: they are opposites.",
]
_LEADS = ["", "", "Sure. ", "Easy one. ", "Okay. "]


def expert_answer(pair: Pair, rng: random.Random) -> str:
    """A short reply naming the opposite, varied in wording, then the strict answer line."""
    w, a = pair.word, pair.answers[0]
    text = rng.choice(_FORMS).format(w=w, W=w[:1].upper() + w[1:], a=a, A=a[:1].upper() + a[1:])
    return f"{rng.choice(_LEADS)}{text}\nThe answer is: {a}"


@dataclass
class AntonymTask(Task):
    """Opposites of common words, from the shipped list of pairs."""

    name: str = NAME
    system_prompt: str | None = None
    max_new_tokens: int = 48
    _questions: list = field(default_factory=list, init=False, repr=False)

    def __post_init__(self):
        check_common(self)
        self._questions = [p for pair in PAIR_LIST for p in pair]

    def n_questions(self, split: str) -> int:
        """How many distinct questions the split holds (the most eval examples one can ask for)."""
        return len(in_split(self._questions, _split, split))

    def make_examples(self, n: int, seed: int = 0, split: str = "train") -> list[Example]:
        check_n(n)
        pool = in_split(self._questions, _split, split)
        phrasing = random.Random(split_seed(seed, split, NAME, "expert"))
        return [Example(NAME, PROMPT.format(word=p.word), list(p.answers), expert_answer(p, phrasing))
                for p in sample_items(pool, n, seed, split, repeat=split == "train")]

    def parse(self, response: str) -> str | None:
        return parse_opposite(response)

    def verify(self, example: Example, parsed: str) -> bool:
        return parsed in example.target

    def lenient_answer(self, example: Example, response: str) -> bool:
        """Lenient rule: an accepted answer anywhere in the reply as a whole word."""
        return bool(_words(response) & set(example.target))


def _split(pair: Pair) -> str:
    return split_of(f"{NAME}:{pair.key}", EVAL_FRACTION)
