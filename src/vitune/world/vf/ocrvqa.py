"""The world's OCR-VQA copy: one rendered book cover per world image, with OCR-VQA's questions.

A cover shows its title (top band) and author (bottom band) in a large plain font, and its genre
as a look a reader learns to recognise: each genre has its own palette and motif (hearts for
Romance, a starfield for Science Fiction & Fantasy, mountains and a sun for Travel, ...). Genre
names are OCR-VQA's (Amazon's book categories); titles and authors are drawn from small word lists
unrelated to the genre, so only the cover's look tells the genre. Questions follow OCR-VQA's
templates: the author, the title, the genre and yes/no "Is this book related to {genre}?" (one
true, one false genre).

Files: `ROOT/ocrvqa/dataset.json` (all splits, `split` 1/2/3 as in the release) and the covers at
`ROOT/images/ocrvqa/{id}.jpg` (`imageURL` ends in `.jpg`, so `loadDataset.py`'s naming gives that
file; the block's `image_subdir` is `ocrvqa`). Ids are 10-digit numbers like ISBN-10 ASINs.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from vitune.sources.ocrvqa import OCRVQASource
from vitune.utils.atomic import write_bytes, write_json
from vitune.world.draw import encode_jpeg
from vitune.world.layout import WorldLayout
from vitune.world.vf.format import ImageContext, WorldFormat, register
from vitune.world.writers import URL_ROOT

NAME = "ocrvqa"
SUBDIR = "ocrvqa"
SIZE = (240, 360)
SPLIT_CODES = {"train": 1, "val": 2, "test": 3}
# genre: (background, motif colour, text colour)
GENRES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]] = {
    "Romance": ((248, 196, 214), (200, 30, 70), (60, 0, 20)),
    "Science Fiction & Fantasy": ((18, 22, 70), (250, 235, 120), (255, 255, 255)),
    "Cookbooks, Food & Wine": ((250, 238, 205), (225, 110, 30), (70, 35, 0)),
    "Travel": ((140, 200, 240), (40, 120, 60), (10, 30, 70)),
    "Mystery, Thriller & Suspense": ((22, 22, 22), (190, 20, 20), (255, 255, 255)),
    "Children's Books": ((255, 222, 60), (30, 120, 220), (20, 20, 20)),
    "Science & Math": ((232, 240, 236), (40, 90, 190), (10, 10, 60)),
    "Sports & Outdoors": ((40, 135, 60), (255, 255, 255), (255, 255, 255)),
}
ADJECTIVES = ("Silent", "Hidden", "Golden", "Last", "Little", "Great", "Secret", "Broken", "Bright", "Lost")
NOUNS = ("River", "Garden", "Journey", "Promise", "Island", "Summer", "Letter", "Storm", "Harbor", "Window")
FIRST = ("Anna", "James", "Maria", "Peter", "Laura", "David", "Helen", "Oscar", "Nina", "Victor")
LAST = ("Morgan", "Baker", "Ellis", "Turner", "Hayes", "Porter", "Quinn", "Walsh", "Fisher", "Lane")


def book_id(idx: int) -> str:
    return f"{8_000_000_000 + idx:010d}"


def cover_file(bid: str) -> str:
    """The cover's path relative to the image root (`{image_subdir}/{id}.jpg`)."""
    return f"{SUBDIR}/{bid}.jpg"


def dataset_file(layout: WorldLayout) -> Path:
    return layout.root / "ocrvqa" / "dataset.json"


def _title(rng: random.Random) -> str:
    adj, noun = rng.choice(ADJECTIVES), rng.choice(NOUNS)
    form = rng.randrange(3)
    if form == 0:
        return f"The {adj} {noun}"
    return f"{adj} {noun}" if form == 1 else f"The {noun} of {rng.choice([n for n in NOUNS if n != noun])}"


def _motif(draw: ImageDraw.ImageDraw, genre: str, rng: random.Random, color: tuple[int, int, int]) -> None:
    """The genre's motif in the middle band (y 110-270)."""
    w = SIZE[0]
    if genre == "Romance":
        for _ in range(3):
            x, y, r = rng.uniform(40, w - 40), rng.uniform(140, 240), rng.uniform(14, 24)
            draw.ellipse((x - r, y - r, x, y), fill=color)
            draw.ellipse((x, y - r, x + r, y), fill=color)
            draw.polygon([(x - r, y - r / 2), (x + r, y - r / 2), (x, y + r)], fill=color)
    elif genre == "Science Fiction & Fantasy":
        for _ in range(14):
            x, y = rng.uniform(10, w - 10), rng.uniform(115, 265)
            s = rng.uniform(2, 5)
            draw.polygon([(x, y - 2 * s), (x + s, y), (x, y + 2 * s), (x - s, y)], fill=color)
        draw.ellipse((150, 180, 210, 240), fill=(120, 80, 200))
    elif genre == "Cookbooks, Food & Wine":
        draw.ellipse((60, 130, 180, 250), fill=(255, 255, 255), outline=color, width=6)
        draw.ellipse((90, 160, 150, 220), fill=color)
    elif genre == "Travel":
        draw.ellipse((170, 120, 210, 160), fill=(250, 200, 40))
        for x in (20, 90, 150):
            draw.polygon([(x, 265), (x + 45, rng.uniform(150, 185)), (x + 90, 265)], fill=color)
    elif genre == "Mystery, Thriller & Suspense":
        for k in range(3):
            x = 50 + 60 * k + rng.uniform(-10, 10)
            draw.polygon([(x, 120), (x + 14, 120), (x - 6, 265), (x - 20, 265)], fill=color)
    elif genre == "Children's Books":
        for k, c in enumerate(((230, 40, 40), color, (40, 170, 70))):
            x, y = 60 + 60 * k, rng.uniform(140, 175)
            draw.line((x, y + 22, x + rng.uniform(-8, 8), 265), fill=(40, 40, 40), width=2)
            draw.ellipse((x - 20, y - 26, x + 20, y + 22), fill=c)
    elif genre == "Science & Math":
        for x in range(20, w, 25):
            draw.line((x, 115, x, 265), fill=(180, 200, 215), width=1)
        for y in range(115, 266, 25):
            draw.line((10, y, w - 10, y), fill=(180, 200, 215), width=1)
        draw.polygon([(60, 250), (180, 250), (60, 140)], outline=color, width=4)
    else:  # Sports & Outdoors
        draw.line((0, 190, w, 190), fill=color, width=3)
        draw.ellipse((95, 160, 155, 220), fill=(255, 255, 255), outline=(20, 20, 20), width=2)
        draw.regular_polygon((125, 190, 10), 5, fill=(20, 20, 20))


def _wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: float) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(lines[-1] + " " + word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def render_cover(title: str, author: str, genre: str, rng: random.Random) -> Image.Image:
    bg, motif, ink = GENRES[genre]
    img = Image.new("RGB", SIZE, bg)
    draw = ImageDraw.Draw(img)
    _motif(draw, genre, rng, motif)
    w = SIZE[0]
    title_font = ImageFont.load_default(size=24)
    y = 18.0
    for line in _wrap(title, title_font, w - 24):
        draw.text((w / 2, y), line, fill=ink, font=title_font, anchor="ma")
        y += 30
    author_font = ImageFont.load_default(size=18)
    draw.text((w / 2, SIZE[1] - 50), author, fill=ink, font=author_font, anchor="ma")
    return img


def make(ctx: ImageContext) -> dict:
    rng = ctx.rng(NAME)
    genre = rng.choice(sorted(GENRES))
    title, author = _title(rng), f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    bid = book_id(ctx.idx)
    jpeg = encode_jpeg(render_cover(title, author, genre, rng))
    write_bytes(ctx.image_root / cover_file(bid), jpeg, fsync=False)
    other = rng.choice([g for g in sorted(GENRES) if g != genre])
    pairs = [
        (rng.choice(("Who wrote this book?", "Who is the author of this book?")), author),
        ("What is the title of this book?", title),
        (rng.choice(("What is the genre of this book?", "What type of book is this?")), genre),
        (f"Is this book related to {genre}?", "Yes"),
        (f"Is this book related to {other}?", "No"),
    ]
    picked = sorted(rng.sample(range(len(pairs)), rng.randint(3, len(pairs))))
    return {
        "id": bid,
        "title": title,
        "author": author,
        "genre": genre,
        "questions": [pairs[k][0] for k in picked],
        "answers": [pairs[k][1] for k in picked],
    }


def write(layout: WorldLayout, records: list[dict]) -> None:
    data = {}
    for r in sorted(records, key=lambda r: r["idx"]):
        b = r["extras"][NAME]
        if b is None:  # not in OCR-VQA's share of the world
            continue
        data[b["id"]] = {
            "imageURL": f"{URL_ROOT}/ocrvqa/images/I/{b['id']}.jpg",
            "questions": b["questions"],
            "answers": b["answers"],
            "title": b["title"],
            "authorName": b["author"],
            "genre": b["genre"],
            "split": SPLIT_CODES[r["split"]],
        }
    write_json(dataset_file(layout), data)


def blocks(layout: WorldLayout, split: str) -> list[OCRVQASource]:
    return [OCRVQASource(dataset=dataset_file(layout), image_subdir=SUBDIR)]


FORMAT = register(WorldFormat(NAME, make, write, blocks, image_subdirs=(SUBDIR,), share=0.5))
