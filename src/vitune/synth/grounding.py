"""What an answer may claim about an image, given its annotations: object nouns and their colours.

- Objects: a vocabulary of concrete nouns (COCO's categories, the world's shapes, frequent Visual
  Genome names) with a synonym/plural table; `hallucinated_objects` lists the nouns of an answer
  that none of the image's annotations contain (negated mentions such as "there is no dog" pass).
- Colours: `color_claims` reads the colours an answer attaches to an object, attributively ("a red
  circle", "a light-blue and white bus") or predicatively ("the circle on the left is red");
  `annotated_colors` collects the same from the annotations (object attributes, colour words in
  names, captions, region phrases, "what color" QAs); `contradicted_colors` lists claims whose
  object has annotated colours none of which matches (shades fold into families: navy is blue).
  An object without annotated colours cannot be contradicted; people are never colour-checked.
"""

from __future__ import annotations

import re

from vitune.data.records import ImageRecord
from vitune.utils.text import COLOR_WORDS

# --- objects ---------------------------------------------------------------------------------

# COCO's 80 categories, minus words that are mostly colours/verbs/adjectives in answers
# ("orange", "tie", "remote", "sink", "book") and would flag innocent text.
COCO_MULTIWORD = (
    "traffic light fire_hydrant stop_sign parking_meter sports_ball baseball_bat baseball_glove "
    "tennis_racket wine_glass hot_dog potted_plant dining_table cell_phone teddy_bear hair_drier"
).replace("traffic light", "traffic_light")
COCO_WORDS = (
    "person bicycle car motorcycle airplane bus train truck boat bench bird cat dog horse sheep cow "
    "elephant bear zebra giraffe backpack umbrella handbag suitcase frisbee skis snowboard kite "
    "skateboard surfboard bottle cup fork knife spoon bowl banana apple sandwich broccoli carrot pizza "
    "donut cake chair couch bed toilet tv laptop mouse keyboard microwave oven toaster refrigerator "
    "clock vase scissors toothbrush"
)
WORLD_SHAPES = "circle square triangle star hexagon diamond sign pentagon oval heart"
# Frequent concrete Visual Genome object names that COCO lacks (again no light/wave/watch/ring...).
VG_NOUNS = (
    "tree building window sky cloud grass wall road street sidewalk fence pole shirt hat helmet jacket "
    "shoe plate table door wheel lamp mirror pillow curtain shelf box bag flower plant "
    "rock mountain beach sand snow hill house roof tower bridge ball boy girl man woman "
    "child kid lady guy baby dress pants shorts glove basket screen sticker "
    "bucket ladder rope cone balloon candle necklace bracelet camera phone computer monitor "
    "desk cabinet stove faucet towel rug carpet blanket jar tray napkin"
)
# Variant -> canonical. Plurals not covered by the rules in `singular` are listed too.
SYNONYMS: dict[str, str] = {
    "people": "person",
    "persons": "person",
    "man": "person",
    "men": "person",
    "woman": "person",
    "women": "person",
    "boy": "person",
    "girl": "person",
    "child": "person",
    "children": "person",
    "kid": "person",
    "guy": "person",
    "lady": "person",
    "baby": "person",
    "bike": "bicycle",
    "motorbike": "motorcycle",
    "plane": "airplane",
    "aeroplane": "airplane",
    "jet": "airplane",
    "sofa": "couch",
    "television": "tv",
    "cellphone": "cell phone",
    "phone": "cell phone",
    "mug": "cup",
    "doughnut": "donut",
    "fridge": "refrigerator",
    "table": "dining table",
    "ball": "sports ball",
    "hydrant": "fire hydrant",
    "racket": "tennis racket",
    "teddy": "teddy bear",
    "rectangle": "square",  # the world's squares are sometimes called rectangles by annotators
    "computer": "laptop",
    "monitor": "tv",
    "screen": "tv",
}
_IRREGULAR = {"mice": "mouse", "knives": "knife", "feet": "foot", "teeth": "tooth"}
_NEGATIONS = {
    "no",
    "not",
    "without",
    "neither",
    "nor",
    "never",
    "none",
    "isn't",
    "aren't",
    "don't",
    "doesn't",
}
_NEG_WINDOW = 4


def singular(word: str) -> str:
    w = word.lower()
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 4 and w.endswith(("ches", "shes", "xes", "sses")):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def canonical(phrase: str) -> str:
    words = [singular(w) for w in phrase.lower().split()]
    p = " ".join(words)
    return SYNONYMS.get(p, p)


def _vocab() -> frozenset[str]:
    terms = [t.replace("_", " ") for t in COCO_MULTIWORD.split()]
    terms += COCO_WORDS.split() + WORLD_SHAPES.split() + VG_NOUNS.split()
    return frozenset(canonical(t) for t in terms)


OBJECT_VOCAB: frozenset[str] = _vocab()
_WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)?")


def _spans(words: list[str], vocab: frozenset[str]) -> list[tuple[str, int, int]]:
    """(canonical object, first word, word after it) for each object noun; bigrams win over words."""
    out, i = [], 0
    while i < len(words):
        if i + 1 < len(words):
            bi = canonical(words[i] + " " + words[i + 1])
            if bi in vocab:
                out.append((bi, i, i + 2))
                i += 2
                continue
        c = canonical(words[i])
        if c in vocab:
            out.append((c, i, i + 1))
        i += 1
    return out


def _mentions(text: str, vocab: frozenset[str]) -> list[tuple[str, int]]:
    """(canonical object, word index) for each object noun in `text`."""
    return [(c, i) for c, i, _ in _spans(_WORD_RE.findall(text.lower()), vocab)]


def annotated_objects(rec: ImageRecord) -> set[str]:
    """Canonical object nouns the record's annotations contain (names, captions, regions, QAs)."""
    texts = [o.name for o in rec.objects] + list(rec.captions) + [r.phrase for r in rec.regions]
    texts += [q.question + " " + " ".join(q.answers) for q in rec.qas] + list(rec.labels)
    allowed: set[str] = set()
    for t in texts:
        for c, _ in _mentions(t, OBJECT_VOCAB):
            allowed.add(c)
    for o in rec.objects:
        allowed.add(canonical(o.name))
        # "stop sign" annotated: "sign" alone is fine too.
        allowed.update(canonical(w) for w in o.name.split())
    return allowed


def hallucinated_objects(text: str, allowed: set[str], vocab: frozenset[str] = OBJECT_VOCAB) -> list[str]:
    """Object nouns in `text` outside `allowed`, ignoring negated mentions ("no dog", "not a cat")."""
    words = _WORD_RE.findall(text.lower())
    bad = []
    for c, i in _mentions(text, vocab):
        if c in allowed or any(p in allowed for p in c.split()):
            continue
        window = words[max(0, i - _NEG_WINDOW) : i]
        if any(w in _NEGATIONS or w.endswith("n't") for w in window):
            continue
        if c not in bad:
            bad.append(c)
    return bad


# --- colours --------------------------------------------------------------------------------

# A shade maps to its family; two colours agree when their families do.
COLOR_FAMILY = {
    "grey": "gray",
    "silver": "gray",
    "navy": "blue",
    "teal": "blue",
    "cyan": "blue",
    "maroon": "red",
    "violet": "purple",
    "magenta": "pink",
    "gold": "yellow",
    "golden": "yellow",
    "beige": "brown",
    "tan": "brown",
}
COLORS = COLOR_WORDS | {"golden"}
# Words allowed inside a colour run ("dark blue", "red and white") and between it and its noun.
_SHADES = {"light", "dark", "bright", "pale", "deep", "vivid", "dull", "pure", "solid", "pastel", "and"}
_NOUN_ADJ = {
    "small", "smaller", "smallest", "large", "larger", "largest", "big", "bigger", "biggest", "tiny",
    "little", "huge", "medium", "sized", "tall", "short", "long", "round", "wide", "narrow", "thin",
    "thick", "old", "new", "shiny", "plain", "colored", "coloured", "painted", "striped",
}  # fmt: skip
_COPULA = {"is", "are", "was", "were", "looks", "look", "appears", "appear", "seems", "seem", "remains"}
_AFTER_COPULA = {"a", "an", "all", "mostly", "mainly", "entirely", "completely", "fully", "also", "both"}
_AFTER_COPULA |= {"painted", "colored", "coloured", "in"}
_CLAUSE_BREAK = {"and", "or", "but", "while", "which", "that", "who", "whose", "where", "when", "because"}
_PREPOSITIONS = {
    "of", "on", "in", "at", "to", "near", "by", "with", "behind", "above", "below", "under", "beside",
    "between", "from", "inside", "over", "beneath", "across", "around", "against", "into", "onto",
}  # fmt: skip
_SUBJECT_GAP = 8  # words between a noun and its copula ("the circle to the left of the square is red")
_NO_COLOR_CHECK = {"person"}  # colour words next to people describe clothes or skin, not the object
_SENTENCE_RE = re.compile(r"[.!?;]+(?:\s+|$)|\n+")
_ANY_COLOR_RE = re.compile(r"\b(?:" + "|".join(sorted(COLORS)) + r")\b", re.IGNORECASE)


def color_family(color: str) -> str:
    c = color.lower()
    return COLOR_FAMILY.get(c, c)


def _run_before(words: list[str], i: int) -> tuple[list[str], int]:
    """Colours of the run ending just before word `i` (adjectives may sit between), and its start."""
    j = i - 1
    while j >= 0 and words[j] in _NOUN_ADJ:
        j -= 1
    colors, start = [], i
    while j >= 0 and (words[j] in COLORS or words[j] in _SHADES):
        if words[j] in COLORS:
            colors.append(words[j])
            start = j
        j -= 1
    return colors[::-1], start


def _in_phrase(words: list[str], i: int) -> bool:
    """True when the noun at word `i` is the object of a preposition ("next to the square")."""
    return any(w in _PREPOSITIONS for w in words[max(0, i - 3) : i])


def _run_after(words: list[str], i: int, end: int, vocab: frozenset[str]) -> list[str]:
    """Colours stated of the noun at words `i:end`: "<noun> [a few words] is [a] <colours>"."""
    if _in_phrase(words, i):
        return []  # "the circle next to the square is red": red is the circle's
    j = end
    while j < len(words) and j - end < _SUBJECT_GAP and words[j] not in _COPULA:
        if words[j] in _CLAUSE_BREAK:
            return []
        if canonical(words[j]) in vocab and not _in_phrase(words, j):
            return []  # another subject: "a square the circle is red"
        j += 1
    if j >= len(words) or words[j] not in _COPULA:
        return []
    j += 1
    while j < len(words) and words[j] in _AFTER_COPULA:
        j += 1
    colors = []
    while j < len(words) and (words[j] in COLORS or words[j] in _SHADES or words[j] in _NOUN_ADJ):
        if words[j] in COLORS:
            colors.append(words[j])
        j += 1
    if j < len(words) and canonical(words[j]) in vocab:
        return []  # "the circle is a red square"? a new noun: the colour is its, not ours
    return colors


def color_claims(text: str, vocab: frozenset[str] = OBJECT_VOCAB) -> list[tuple[str, str]]:
    """(canonical object, colour) pairs that `text` asserts; negated ones are left out."""
    if not _ANY_COLOR_RE.search(text):
        return []  # most answers name no colour: skip the tokenizing
    out: list[tuple[str, str]] = []
    for sentence in _SENTENCE_RE.split(text.lower()):
        words = _WORD_RE.findall(sentence)
        for obj, i, end in _spans(words, vocab):
            if obj in _NO_COLOR_CHECK:
                continue
            before, start = _run_before(words, i)
            window = words[max(0, start - _NEG_WINDOW) : start]
            if before and not any(w in _NEGATIONS or w.endswith("n't") for w in window):
                out += [(obj, c) for c in before]
            out += [(obj, c) for c in _run_after(words, i, end, vocab)]
    seen: set[tuple[str, str]] = set()
    return [x for x in out if not (x in seen or seen.add(x))]


def _heads(name: str) -> list[str]:
    """The keys an annotated name answers to: its canonical form and its head noun."""
    c = canonical(name)
    words = c.split()
    return [c] + ([words[-1]] if len(words) > 1 else [])


_COLOR_Q_RE = re.compile(r"\bwhat colou?rs? (?:is|are)\b", re.I)


def annotated_colors(rec: ImageRecord, vocab: frozenset[str] = OBJECT_VOCAB) -> dict[str, set[str]]:
    """Canonical object -> colour families the annotations give it."""
    known: dict[str, set[str]] = {}

    def add(obj: str, color: str) -> None:
        for k in _heads(obj):
            known.setdefault(k, set()).add(color_family(color))

    for o in rec.objects:
        for a in o.attributes:
            for w in _WORD_RE.findall(a.lower()):
                if w in COLORS:
                    add(o.name, w)
        for w in _WORD_RE.findall(o.name.lower()):  # "red car"
            if w in COLORS:
                noun = " ".join(x for x in o.name.lower().split() if x not in COLORS)
                if noun:
                    add(noun, w)
    for text in list(rec.captions) + [r.phrase for r in rec.regions]:
        for obj, c in color_claims(text, vocab):
            add(obj, c)
    for qa in rec.qas:  # VQA: "What color is the bus?" -> ["white", ...]
        if not _COLOR_Q_RE.search(qa.question):
            continue
        objs = {o for o, _ in _mentions(qa.question, vocab)}
        if len(objs) != 1:
            continue
        for ans in qa.answers:
            for w in _WORD_RE.findall(ans.lower()):
                if w in COLORS:
                    add(next(iter(objs)), w)
    return known


def contradicted_colors(
    text: str, known: dict[str, set[str]], vocab: frozenset[str] = OBJECT_VOCAB
) -> list[str]:
    """Claims of `text` like "red circle" whose object has annotated colours, none of this family."""
    bad: list[str] = []
    if not known:
        return bad
    for obj, color in color_claims(text, vocab):
        fams = set().union(*(known.get(k, set()) for k in _heads(obj)))
        if fams and color_family(color) not in fams:
            label = f"{color} {obj} (annotated: {', '.join(sorted(fams))})"
            if label not in bad:
                bad.append(label)
    return bad
