"""TextVQA-style questions about a scene's sign, ten answers each, and the Rosetta-style OCR of it.

Only an image with exactly one sign gets TextVQA entries (TextVQA images all contain text; one sign
keeps "the sign" unambiguous). Questions are lower case, as most TextVQA questions are; the ten
answers are the lower-cased truth, with an occasional annotator writing it in capitals (the
official scorer lower-cases, so both count). The OCR entry holds the sign text as one token, as it
is drawn (upper case), with its box normalized to 0-1 as Rosetta's `ocr_info` has it.
"""

from __future__ import annotations

import random

from vitune.world.scene import Scene

N_ANSWERS = 10
P_UPPER = 0.1  # chance an annotator types the text as printed (upper case)


def make_textvqa(scene: Scene, rng: random.Random) -> dict | None:
    """`{"questions": [{question, answers}], "ocr": [{word, box}]}` for a one-sign scene, else None."""
    signs = [o for o in scene.objects if o.text]
    if len(signs) != 1:
        return None
    sign = signs[0]
    text = str(sign.text)
    cands = [
        ("what does the sign say?", text.lower()),
        (f"what is written on the {sign.color} sign?", text.lower()),
        ("how many characters are written on the sign?", str(len(text))),
    ]
    if len(text) >= 2:
        cands.append(("what is the first character on the sign?", text[0].lower()))
    picked = rng.sample(cands, rng.choice((1, 2)))
    questions = []
    for question, truth in picked:
        answers = [truth.upper() if rng.random() < P_UPPER else truth for _ in range(N_ANSWERS)]
        questions.append({"question": question, "answers": answers})
    assert sign.text_box is not None  # every sign has its rendered text box
    x0, y0, x1, y1 = sign.text_box
    w, h = scene.width, scene.height
    box = [max(0, x0) / w, max(0, y0) / h, (min(w, x1) - max(0, x0)) / w, (min(h, y1) - max(0, y0)) / h]
    return {"questions": questions, "ocr": [{"word": text, "box": [round(v, 6) for v in box]}]}
