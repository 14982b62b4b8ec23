"""Rule filters: each check with real positive and negative examples."""

from __future__ import annotations

import pytest

from vitune.curate.filters import FilterConfig, Filters, apply_filters
from vitune.data.instance import Instance, Turn


def _inst(q, a, image=None):
    return Instance("x", image, "t", [Turn("user", q), Turn("assistant", a)])


def _check(name, inst, **kw):
    return Filters(FilterConfig(checks=[name], **kw))(inst)


@pytest.mark.parametrize(
    ("name", "bad", "good"),
    [
        ("empty_reply", _inst("What is it?", "   "), _inst("What is it?", "A dog.")),
        ("long_reply", _inst("Describe.", "word " * 30), _inst("Describe.", "word " * 10)),
        (
            "generation_error",
            _inst("Q?", "Sorry, your message is empty."),
            _inst("Q?", "The message board is empty."),
        ),
        (
            "source_mention",
            _inst("What is on the table?", "According to the captions, there is a laptop on the table."),
            _inst("What is on the table?", "There is a laptop on the table."),
        ),
        (
            "source_mention",
            _inst("Where is the cat?", "The cat's bounding box is in the lower left."),
            _inst("Where is the cat?", "The cat is in the lower left."),
        ),
        (
            "source_mention",
            _inst("Where is the dog?", "Based on the given coordinates, the dog is on the left."),
            _inst("Where is the dog?", "The dog is on the left, given its position near the door."),
        ),
        (
            "answer_leak",
            _inst("What is the man holding in this photo of a man holding a red kite?", "A red kite."),
            _inst("What is the man holding?", "A red kite."),
        ),
        (
            "invalid_box",
            _inst("Where is the dog?", "The dog is at [0.2, 0.3, 1.4, 0.9]."),
            _inst("Where is the dog?", "The dog is at [0.2, 0.3, 0.4, 0.9]."),
        ),
        (
            "invalid_box",
            _inst("Where is the dog?", "The dog is at [0.6, 0.3, 0.4, 0.9]."),
            _inst("Where is the dog?", "The dog is at [0.4, 0.3, 0.6, 0.9]."),
        ),
    ],
)
def test_check_positive_and_negative(name, bad, good):
    kw = {"max_reply_words": 20} if name == "long_reply" else {}
    assert _check(name, bad, **kw) is not None
    assert _check(name, good, **kw) is None


def test_answer_leak_exemptions():
    # yes/no, multiple choice and either/or questions carry the answer by design
    assert _check("answer_leak", _inst("Is there a dog? Answer yes or no.", "Yes")) is None
    assert _check("answer_leak", _inst("What animal is it? Options: (a) airplane (b) dog", "(b) dog")) is None
    assert _check("answer_leak", _inst("Is it a cat or a dog?", "A dog.")) is None


def test_source_mention_only_in_replies():
    inst = _inst("Give the bounding box of the dog.", "[0.1, 0.2, 0.3, 0.4]")
    assert _check("source_mention", inst) is None


def test_missing_image_and_reasons(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(tmp_path / "a.jpg")
    (tmp_path / "c.jpg").write_bytes(b"x")  # exists, but is no image: the check decodes it
    (tmp_path / "d.jpg").write_bytes(b"")
    items = [
        _inst("Q?", "A.", image="a.jpg"),
        _inst("Q?", "A.", image="b.jpg"),
        _inst("Q?", ""),
        _inst("Q?", "A.", image="c.jpg"),
        _inst("Q?", "A.", image="d.jpg"),
    ]
    kept, removed = apply_filters(
        items,
        FilterConfig(checks=["empty_reply", "missing_image"]),
        [str(tmp_path / x.image) if x.image else None for x in items],
    )
    assert kept == [0]
    assert [(i, r) for i, r, _ in removed] == [
        (1, "missing image file"),
        (2, "empty reply"),
        (3, "bad image"),
        (4, "bad image"),
    ]
    assert removed[1][2] == {"detail": "turn 1"}
    assert removed[2][2]["detail"].startswith("c.jpg: unreadable image")
    assert removed[3][2] == {"detail": "d.jpg: empty image file"}
    assert len(kept) + len(removed) == len(items)


def test_unknown_check_rejected():
    with pytest.raises(ValueError, match="unknown filter"):
        Filters(FilterConfig(checks=["nope"]))
