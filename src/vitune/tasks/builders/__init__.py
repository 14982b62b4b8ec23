"""The built-in task builders, one module per group of sources; importing this package registers them.

- `core`: the first tasks (COCO captions, VQAv2 short answers, counting, colours, existence)
- `objects`: COCO detection (object selection, region categories, positions, boxes, knowledge)
- `regions`: Visual Genome attributes, relationships and regions; RefCOCO referring expressions
- `captions`: COCO captions (paragraphs, image-text matching)
- `qa`: VQAv2 multiple choice and counting, GQA, TextVQA + OCR, ScienceQA
- `classify`: image-folder classification
- `knowledge`: A-OKVQA, OK-VQA (outside knowledge, rationales, knowledge categories) and VizWiz
- `books_space_clevr`: OCR-VQA book covers, VSR spatial statements, CLEVR scenes
"""

from vitune.tasks.builders import books_space_clevr, captions, classify, core, knowledge, objects, qa, regions

__all__ = ["books_space_clevr", "captions", "classify", "core", "knowledge", "objects", "qa", "regions"]
