"""The 40 PAS rudiments: their canonical order, families and one sticking pattern each.

Class ids of the 40-class rudiment task are positions in `RUDIMENTS`, which follows the Percussive
Arts Society's own numbering (1 = single stroke roll ... 40 = triple ratamacue), so they are stable
across runs and machines whatever order the data comes in.
"""

from __future__ import annotations

from dataclasses import dataclass

# slug -> (family, sticking pattern, grid slots per beat). The pattern is one cycle, right-hand
# lead: each space-separated token is one grid slot; `R`/`L` a stroke, `>` an accent, `-` a rest,
# lowercase letters before a stroke its grace notes (`l` a flam, `ll` a drag), `z` a buzz stroke.
# Two same-hand strokes in a row are a diddle.
_RUDIMENT_TABLE: dict[str, tuple[str, str, int]] = {
    "single_stroke_roll": ("roll", "R L R L R L R L", 4),
    "single_stroke_four": ("roll", "R L R >L - -", 3),
    "single_stroke_seven": ("roll", "R L R L R L >R -", 4),
    "multiple_bounce_roll": ("roll", "Rz Lz Rz Lz Rz Lz Rz Lz", 4),
    "triple_stroke_roll": ("roll", "R R R L L L", 3),
    "double_stroke_open_roll": ("roll", "R R L L", 4),
    "five_stroke_roll": ("roll", "R R L L >R - - -", 4),
    "six_stroke_roll": ("roll", ">R L L R R >L - -", 4),
    "seven_stroke_roll": ("roll", "R R L L R R >L -", 4),
    "nine_stroke_roll": ("roll", "R R L L R R L L >R - - -", 4),
    "ten_stroke_roll": ("roll", "R R L L R R L L >R >L - -", 4),
    "eleven_stroke_roll": ("roll", "R R L L R R L L R R >L -", 4),
    "thirteen_stroke_roll": ("roll", "R R L L R R L L R R L L >R - - -", 4),
    "fifteen_stroke_roll": ("roll", "R R L L R R L L R R L L R R >L -", 4),
    "seventeen_stroke_roll": ("roll", "R R L L R R L L R R L L R R L L >R - - -", 4),
    "single_paradiddle": ("diddle", ">R L R R >L R L L", 4),
    "double_paradiddle": ("diddle", ">R L R L R R >L R L R L L", 3),
    "triple_paradiddle": ("diddle", ">R L R L R L R R >L R L R L R L L", 4),
    "paradiddle_diddle": ("diddle", ">R L R R L L >R L R R L L", 3),
    "flam": ("flam", "lR rL", 1),
    "flam_accent": ("flam", "l>R L R r>L R L", 3),
    "flam_tap": ("flam", "l>R R r>L L", 4),
    "flamacue": ("flam", "lR >L R L lR - - -", 4),
    "flam_paradiddle": ("flam", "l>R L R R r>L R L L", 4),
    "single_flammed_mill": ("flam", "l>R R L R r>L L R L", 4),
    "flam_paradiddle_diddle": ("flam", "l>R L R R L L r>L R L L R R", 3),
    "pataflafla": ("flam", "lR L R rL lR L R rL", 4),
    "swiss_army_triplet": ("flam", "lR R L lR R L", 3),
    "inverted_flam_tap": ("flam", "l>R rL r>L lR", 4),
    "flam_drag": ("flam", "l>R rrL R r>L llR L", 3),
    "drag": ("drag", "llR rrL", 1),
    "single_drag_tap": ("drag", "llR >L rrL >R", 2),
    "double_drag_tap": ("drag", "llR llR >L rrL rrL >R", 3),
    "lesson_25": ("drag", "llR L >R rrL R >L", 3),
    "single_dragadiddle": ("drag", "llR L R R rrL R L L", 4),
    "drag_paradiddle_1": ("drag", ">R llR L R R >L rrL R L L", 4),
    "drag_paradiddle_2": ("drag", ">R llR >R llR L R R >L rrL >L rrL R L L", 4),
    "single_ratamacue": ("drag", "llR L R >L rrL R L >R", 4),
    "double_ratamacue": ("drag", "llR llR L R >L rrL rrL R L >R", 4),
    "triple_ratamacue": ("drag", "llR llR llR L R >L rrL rrL rrL R L >R", 4),
}

RUDIMENTS: tuple[str, ...] = tuple(_RUDIMENT_TABLE)
RUDIMENT_FAMILIES: tuple[str, ...] = ("roll", "diddle", "flam", "drag")
RUDIMENT_FAMILY: dict[str, str] = {slug: family for slug, (family, _, _) in _RUDIMENT_TABLE.items()}


@dataclass(frozen=True)
class Stroke:
    """One stroke of a rudiment's sticking pattern."""

    slot: int  # grid position within the cycle
    hand: str  # "R" or "L"
    kind: str  # "accent", "tap", "diddle", "grace" or "buzz"
    grace_rank: int = 0  # for grace notes: 1 is the one closest to its main stroke
    diddle_position: int = 0  # 1 or 2 within a diddle, else 0


@dataclass(frozen=True)
class StickingPattern:
    slug: str
    family: str
    strokes: tuple[Stroke, ...]
    slots: int
    slots_per_beat: int

    @property
    def beats(self) -> float:
        return self.slots / self.slots_per_beat


def sticking_pattern(slug: str) -> StickingPattern:
    """Parse the canonical sticking pattern of a rudiment into strokes."""
    if slug not in _RUDIMENT_TABLE:
        raise KeyError(f"unknown rudiment {slug!r}; expected one of the 40 PAS slugs, e.g. {RUDIMENTS[0]!r}")
    family, text, slots_per_beat = _RUDIMENT_TABLE[slug]
    tokens = text.split()
    mains: list[tuple[int, str, bool, int, bool]] = []  # slot, hand, accent, graces, buzz
    for slot, token in enumerate(tokens):
        if token == "-":
            continue
        graces = sum(1 for ch in token if ch in "lr")
        hand = token.rstrip("z")[-1]
        mains.append((slot, hand, ">" in token, graces, token.endswith("z")))

    # Diddles are scored only for the roll and diddle families (upstream leaves diddle_quality null
    # for flam and drag rudiments), so only there do same-hand pairs count as diddles.
    pairs_are_diddles = family in ("roll", "diddle")
    strokes: list[Stroke] = []
    for i, (slot, hand, accent, graces, buzz) in enumerate(mains):
        for rank in range(graces, 0, -1):
            strokes.append(Stroke(slot, "L" if hand == "R" else "R", "grace", grace_rank=rank))
        position = _diddle_position(mains, i) if pairs_are_diddles and not accent and not buzz else 0
        kind = "buzz" if buzz else "accent" if accent else "diddle" if position else "tap"
        strokes.append(Stroke(slot, hand, kind, diddle_position=position))
    return StickingPattern(slug, family, tuple(strokes), len(tokens), slots_per_beat)


def _diddle_position(mains: list[tuple[int, str, bool, int, bool]], i: int) -> int:
    """1 or 2 within a run of unaccented same-hand strokes on adjacent slots, else 0.

    Runs are paired left to right, so a triple stroke reads 1, 2, 1.
    """

    def joined(a: int, b: int) -> bool:  # strokes a and b = a + 1 belong to one run
        return mains[a][1] == mains[b][1] and mains[b][0] == mains[a][0] + 1 and not mains[a][2] and not mains[b][2]

    start = i
    while start > 0 and joined(start - 1, start):
        start -= 1
    end = i
    while end + 1 < len(mains) and joined(end, end + 1):
        end += 1
    if start == end:
        return 0
    return (i - start) % 2 + 1
