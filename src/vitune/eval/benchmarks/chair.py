"""CHAIR (Rohrbach et al. 2018): object hallucination in generated captions, CHAIRi and CHAIRs.

Ground truth (`load`): either a JSON dict `{image_id: [object words]}` (the detections form used
by later CHAIR ports), or COCO `instances_*.json`; with instances, a `captions_*.json` in the same
folder adds the objects named in the human captions, as the original `get_annotations` does.
Object words go through the synonym table to their COCO category. Prompt: "Please describe this
image in detail." (the usual LLaVA-era CHAIR prompt).

Caption -> objects (original `caption_to_words`): lowercase, tokenize, singularize, merge
two-word terms ("hot dog", "teddy bear", "baby bird" -> "bird", "passenger train" -> "train",
"toilet seat" -> "toilet", ...), drop "seat" when "toilet" is present, keep words in the synonym
table and map them to their category. CHAIRi = mentions whose category is not in the image's
ground truth / all mentions; CHAIRs = captions with at least one such mention / captions (×100).
Every mention counts, repeats included. Recall (ground-truth categories mentioned) is reported too.

The table is the original `data/synonyms.txt`, parsed the original way (`split(', ')`), which keeps
its quirks: " motor bike" and " cheesecake" carry a leading space (double spaces in the file) so
"motor bike"/"cheesecake" never count, and "iPhone" never matches a lowercased caption.
The original uses nltk's `word_tokenize` and pattern.en's `singularize` (neither is a dependency):
here a regex tokenizer and a singularizer that maps a plural only when its singular is an object
word. Both can be replaced (`tokenize=`, `singularize=`) to plug the original libraries in.

Categories outside the table (the original raises `KeyError`, e.g. `'triangle'` on the embedded
world's COCO file) join the vocabulary as their own words, so "two triangles" is a mention of
"triangle"; on real COCO every category is in the table and nothing changes. They are listed in
the result (`extra_categories`). CHAIRi and CHAIRs are `n / N * 100`, the original's order.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from vitune.eval.benchmarks.base import (
    BenchItem,
    Benchmark,
    Missing,
    pair_predictions,
    ratio_pct,
    read_json,
    register_benchmark,
)

# LisaAnne/Hallucination data/synonyms.txt: first word of a line = the COCO category.
SYNONYMS_TXT = """\
person, girl, boy, man, woman, kid, child, chef, baker, people, adult, rider, children, baby, worker, passenger, sister, biker, policeman, cop, officer, lady, cowboy, bride, groom, male, female, guy, traveler, mother, father, gentleman, pitcher, player, skier, snowboarder, skater, skateboarder, person, woman, guy, foreigner, child, gentleman, caller, offender, coworker, trespasser, patient, politician, soldier, grandchild, serviceman, walker, drinker, doctor, bicyclist, thief, buyer, teenager, student, camper, driver, solider, hunter, shopper, villager
bicycle, bike, bicycle, bike, unicycle, minibike, trike
car, automobile, van, minivan, sedan, suv, hatchback, cab, jeep, coupe, taxicab, limo, taxi
motorcycle, scooter,  motor bike, motor cycle, motorbike, scooter, moped
airplane, jetliner, plane, air plane, monoplane, aircraft, jet, jetliner, airbus, biplane, seaplane
bus, minibus, trolley
train, locomotive, tramway, caboose
truck, pickup, lorry, hauler, firetruck
boat, ship, liner, sailboat, motorboat, dinghy, powerboat, speedboat, canoe, skiff, yacht, kayak, catamaran, pontoon, houseboat, vessel, rowboat, trawler, ferryboat, watercraft, tugboat, schooner, barge, ferry, sailboard, paddleboat, lifeboat, freighter, steamboat, riverboat, battleship, steamship
traffic light, street light, traffic signal, stop light, streetlight, stoplight
fire hydrant, hydrant
stop sign
parking meter
bench, pew
bird, ostrich, owl, seagull, goose, duck, parakeet, falcon, robin, pelican, waterfowl, heron, hummingbird, mallard, finch, pigeon, sparrow, seabird, osprey, blackbird, fowl, shorebird, woodpecker, egret, chickadee, quail, bluebird, kingfisher, buzzard, willet, gull, swan, bluejay, flamingo, cormorant, parrot, loon, gosling, waterbird, pheasant, rooster, sandpiper, crow, raven, turkey, oriole, cowbird, warbler, magpie, peacock, cockatiel, lorikeet, puffin, vulture, condor, macaw, peafowl, cockatoo, songbird
cat, kitten, feline, tabby
dog, puppy, beagle, pup, chihuahua, schnauzer, dachshund, rottweiler, canine, pitbull, collie, pug, terrier, poodle, labrador, doggie, doberman, mutt, doggy, spaniel, bulldog, sheepdog, weimaraner, corgi, cocker, greyhound, retriever, brindle, hound, whippet, husky
horse, colt, pony, racehorse, stallion, equine, mare, foal, palomino, mustang, clydesdale, bronc, bronco
sheep, lamb, ram, lamb, goat, ewe
cow, cattle, oxen, ox, calf, cattle, holstein, heifer, buffalo, bull, zebu, bison 
elephant
bear, panda
zebra
giraffe
backpack, knapsack
umbrella
handbag, wallet, purse, briefcase
tie, bow, bow tie
suitcase, suit case, luggage
frisbee
skis, ski
snowboard
sports ball, ball
kite
baseball bat
baseball glove
skateboard
surfboard, longboard, skimboard, shortboard, wakeboard
tennis racket, racket
bottle
wine glass
cup
fork
knife, pocketknife, knive
spoon
bowl, container
banana
apple
sandwich, burger, sub, cheeseburger, hamburger
orange
broccoli
carrot
hot dog
pizza
donut, doughnut, bagel
cake,  cheesecake, cupcake, shortcake, coffeecake, pancake
chair, seat, stool
couch, sofa, recliner, futon, loveseat, settee, chesterfield 
potted plant, houseplant
bed
dining table, table, desk
toilet, urinal, commode, toilet, lavatory, potty
tv, monitor, televison, television
laptop, computer, notebook, netbook, lenovo, macbook, laptop computer
mouse
remote
keyboard
cell phone, mobile phone, phone, cellphone, telephone, phon, smartphone, iPhone
microwave
oven, stovetop, stove, stove top oven
toaster
sink
refrigerator, fridge, fridge, freezer
book
clock
vase
scissors
teddy bear, teddybear
hair drier, hairdryer
toothbrush
"""  # noqa: W291 - the trailing spaces are part of the original table

# Original hard-coded two-word terms and qualifier rules (utils/chair.py at its latest version,
# which ends with "train track": "train tracks" is no train).
DOUBLE_WORDS = (
    "motor bike", "motor cycle", "air plane", "traffic light", "street light", "traffic signal",
    "stop light", "fire hydrant", "stop sign", "parking meter", "suit case", "sports ball",
    "baseball bat", "baseball glove", "tennis racket", "wine glass", "hot dog", "cell phone",
    "mobile phone", "teddy bear", "hair drier", "potted plant", "bow tie", "laptop computer",
    "stove top oven", "home plate", "train track",
)  # fmt: skip
ANIMAL_WORDS = (
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "animal",
    "cub",
)
VEHICLE_WORDS = ("jet", "train")
DESCRIBE_PROMPT = "Please describe this image in detail."


def _tables() -> tuple[dict[str, str], dict[str, str]]:
    inverse: dict[str, str] = {}
    for line in SYNONYMS_TXT.splitlines():
        syns = line.strip().split(", ")
        for s in syns:
            inverse[s] = syns[0]
    double = {w: w for w in DOUBLE_WORDS}
    for a in ANIMAL_WORDS:
        double[f"baby {a}"] = a
        double[f"adult {a}"] = a
    for v in VEHICLE_WORDS:
        double[f"passenger {v}"] = v
    double["bow tie"] = "tie"
    double["toilet seat"] = "toilet"
    double["wine glas"] = "wine glass"  # pattern.en singularizes "glass" to "glas"
    return inverse, double


INVERSE_SYNONYMS, DOUBLE_WORD_MAP = _tables()

_TOKEN = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|n't|'[a-z]+|[^\sa-z0-9]")
_IRREGULAR = {
    "people": "person", "men": "man", "women": "woman", "children": "child", "mice": "mouse",
    "geese": "goose", "feet": "foot", "teeth": "tooth", "knives": "knife", "oxen": "ox",
    "policemen": "policeman", "gentlemen": "gentleman", "servicemen": "serviceman",
    "calves": "calf", "wolves": "wolf", "leaves": "leaf", "shelves": "shelf",
}  # fmt: skip


def tokenize(text: str) -> list[str]:
    """A small stand-in for nltk.word_tokenize on lowercased captions."""
    return _TOKEN.findall(text.lower())


def singularize(
    word: str, vocabulary: Mapping[str, str] = INVERSE_SYNONYMS, doubles: Mapping[str, str] = DOUBLE_WORD_MAP
) -> str:
    """A plural object word -> its singular when that singular is in the table, else the word."""
    if word in vocabulary or len(word) < 3:
        return word
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    cands = []
    if word.endswith("ies"):
        cands.append(word[:-3] + "y")
    if word.endswith("ves"):
        cands += [word[:-3] + "f", word[:-3] + "fe"]
    if word.endswith("es"):
        cands.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss"):
        cands.append(word[:-1])
    for c in cands:
        if c in vocabulary or any(d.endswith(" " + c) for d in doubles):
            return c
    return word


class ChairEvaluator:
    """Caption -> (object words, categories), the original rules with pluggable tokenizer/singularizer."""

    def __init__(
        self,
        tokenize: Callable[[str], list[str]] = tokenize,
        singularize: Callable[[str], str] | None = None,
        extra_categories: Iterable[str] = (),
    ) -> None:
        self.tokenize = tokenize
        self.vocabulary = dict(INVERSE_SYNONYMS)
        self.doubles = dict(DOUBLE_WORD_MAP)
        for name in extra_categories:
            self.vocabulary.setdefault(name, name)
            if len(name.split()) == 2:
                self.doubles.setdefault(name, name)
        self.singularize = singularize or (lambda w: _singularize(w, self.vocabulary, self.doubles))

    def caption_objects(self, caption: str) -> tuple[list[str], list[str]]:
        words = [self.singularize(w) for w in self.tokenize(caption.lower())]
        merged, i = [], 0
        while i < len(words):
            pair = " ".join(words[i : i + 2])
            if pair in self.doubles:
                merged.append(self.doubles[pair])
                i += 2
            else:
                merged.append(words[i])
                i += 1
        if "toilet" in merged and "seat" in merged:  # "the seat of the toilet" is not a chair
            merged = [w for w in merged if w != "seat"]
        words = [w for w in merged if w in self.vocabulary]
        return words, [self.vocabulary[w] for w in words]


_singularize = singularize  # the module-level default, reachable under the parameter's name


def _gt_from_coco(
    instances: Path, ev: ChairEvaluator
) -> tuple[dict[str, set[str]], dict[str, str], list[str]]:
    doc = read_json(instances)
    names = {c["id"]: c["name"] for c in doc["categories"]}
    ev = ChairEvaluator(ev.tokenize, extra_categories=names.values())  # see the module docstring
    objs: dict[str, set[str]] = {str(im["id"]): set() for im in doc["images"]}
    files = {str(im["id"]): im.get("file_name", "") for im in doc["images"]}
    for a in doc["annotations"]:
        if a["category_id"] not in names:
            raise ValueError(f"{instances}: annotation {a.get('id')}: unknown category_id {a['category_id']}")
        objs.setdefault(str(a["image_id"]), set()).add(ev.vocabulary[names[a["category_id"]]])
    caps = sorted(instances.parent.glob(instances.name.replace("instances_", "captions_")))
    for cap_file in caps:
        for a in read_json(cap_file)["annotations"]:
            if str(a["image_id"]) in objs:
                objs[str(a["image_id"])].update(ev.caption_objects(a["caption"])[1])
    return objs, files, sorted(set(names.values()) - set(INVERSE_SYNONYMS))


@register_benchmark
class CHAIR(Benchmark):
    name = "chair"
    metric = "chair_i"
    higher_is_better = False  # CHAIRi is a hallucination rate
    missing_in_runs = "skip"  # a missing caption cannot be a wrong one
    scorer_version = 2  # 2: "train track", categories outside the table, n / N * 100 order

    def __init__(self, **evaluator_options: Any) -> None:
        self.evaluator_options = evaluator_options
        self.evaluator = ChairEvaluator(**evaluator_options)

    def load(self, path: str | os.PathLike) -> list[BenchItem]:
        p = Path(path)
        doc_is_coco = p.name.startswith("instances_")
        extra: list[str] = []  # one list shared by every item: the categories outside the table
        if doc_is_coco:
            objs, files, extra = _gt_from_coco(p, self.evaluator)
        else:
            raw = read_json(p)
            objs, files = {}, {}
            for k, words in raw.items():
                unknown = [w for w in words if w not in INVERSE_SYNONYMS]
                if unknown:
                    raise ValueError(f"{p}: image {k}: not CHAIR object words: {unknown}")
                objs[str(k)] = {INVERSE_SYNONYMS[w] for w in words}
        return [
            BenchItem(
                item_id=k,
                question=DESCRIBE_PROMPT,
                image=files.get(k) or None,
                answers=sorted(v),
                meta={"raw_question": DESCRIBE_PROMPT, "extra_categories": extra},
            )
            for k, v in objs.items()
        ]

    def score(
        self, preds: Mapping[str, str], items: Iterable[BenchItem], *, missing: Missing = "error"
    ) -> dict[str, Any]:
        if missing == "wrong":
            raise ValueError("CHAIR has no 'wrong' caption; use missing='error' or 'skip'")
        pairs, n_missing = pair_predictions(preds, items, missing)
        known = set(INVERSE_SYNONYMS.values())
        extra = sorted(
            {c for it, _ in pairs for c in it.meta.get("extra_categories", ())}
            | ({a for it, _ in pairs for a in it.answers} - known)
        )
        ev = ChairEvaluator(**self.evaluator_options, extra_categories=extra) if extra else self.evaluator
        n_caps = n_hall_caps = n_mentions = n_hall = n_gt = n_recalled = 0
        per_item = {}
        for it, cap in pairs:
            gt = set(it.answers)
            words, cats = ev.caption_objects(cap or "")
            hall = [(w, c) for w, c in zip(words, cats, strict=True) if c not in gt]
            recalled = {c for c in cats if c in gt}
            n_caps += 1
            n_hall_caps += bool(hall)
            n_mentions += len(cats)
            n_hall += len(hall)
            n_gt += len(gt)
            n_recalled += len(recalled)
            per_item[it.item_id] = {"mentioned": cats, "hallucinated": [c for _, c in hall]}
        return self.result(
            overall=ratio_pct(n_hall, n_mentions),
            chair_i=ratio_pct(n_hall, n_mentions),
            chair_s=ratio_pct(n_hall_caps, n_caps),
            recall=ratio_pct(n_recalled, n_gt),
            extra_categories=", ".join(extra),
            per_category={},
            n=n_caps,
            n_mentions=n_mentions,
            n_missing=n_missing,
            per_item=per_item,
        )
