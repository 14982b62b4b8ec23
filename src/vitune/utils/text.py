"""Small English helpers shared by task builders and synthesis: colour vocabulary, plurals."""

from __future__ import annotations

# Attribute words that name a colour (Visual Genome attributes, the embedded world's colours).
COLOR_WORDS = frozenset(
    [
        "red",
        "orange",
        "yellow",
        "green",
        "blue",
        "purple",
        "pink",
        "brown",
        "black",
        "white",
        "gray",
        "grey",
        "silver",
        "gold",
        "beige",
        "tan",
        "cyan",
        "teal",
        "navy",
        "maroon",
        "violet",
        "magenta",
    ]
)


def plural(noun: str, n: int = 2) -> str:
    """`noun` for n == 1, else its regular English plural (box -> boxes, city -> cities)."""
    if n == 1:
        return noun
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and len(noun) > 1 and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"
