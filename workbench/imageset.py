"""The image spot-check: small images drawn by code, so the set ships as this generator and its
truth is known by construction.

Four kinds of image, `SETS` drawings of each, all from one seed (`random.Random(seed)`, same
seed → same bytes):

- **shapes**: circles of one colour and squares of another, in a grid (how many circles? what
  colour are the squares?);
- **chart**: a titled bar chart with one clearly largest bar (the title? the largest bar?);
- **sign**: a short printed code (what does it say?);
- **table**: a small price table (the price of one item?).

Three kinds have an unanswerable question beside them (something not in the image: a dog's name,
a year on the sign, the chart's publisher), the false-premise side: saying it is not there is
correct.

`write_spotcheck(folder)` writes the PNGs and `image_spotcheck.jsonl`, a QA data file in the
hallucination experiment's shape (`question`, `answers`, `answerable`, `category`, `id`, and
`images` relative to the file), read by `workbench.analysis.grading.load_dataset` and graded by
its deterministic grader. `spotcheck_file()` does so once into the workbench cache.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL.ImageDraw import ImageDraw
    from PIL.ImageFont import FreeTypeFont, ImageFont

__all__ = ["GENERATOR_VERSION", "SETS", "SPOTCHECK_FILE", "SpotcheckImage", "draw_spotcheck", "spotcheck_file",
           "write_spotcheck"]

SPOTCHECK_FILE = "image_spotcheck.jsonl"
#: Bumped whenever the drawing changes, so a cached set from an older generator is not reused.
GENERATOR_VERSION = 1
#: Drawings of each kind: 3 give 27 questions (18 answerable, 9 unanswerable) from 12 images.
SETS = 3
#: Colour names a grader can match, with their RGB.
_COLOURS: dict[str, tuple[int, int, int]] = {"red": (220, 30, 30), "blue": (30, 70, 220), "green": (20, 150, 40),
                                             "orange": (245, 140, 0), "purple": (130, 40, 160)}
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_FRUITS = ("Apples", "Pears", "Plums", "Cherries", "Figs", "Lemons")
_MONTHS = ("March", "April", "May", "June")
_ITEMS = ("Tea", "Coffee", "Juice", "Water", "Cocoa")
_LETTERS = "ABCDEFHKLMNPRSTUVWXYZ"  # no look-alikes (G/6, I/1, O/0, Q)


@dataclass(frozen=True)
class SpotcheckImage:
    """One drawn image and its questions: (id suffix, category, question, accepted answers)."""

    name: str
    png: bytes
    questions: tuple[tuple[str, str, str, tuple[str, ...]], ...]


def _font(size: int) -> FreeTypeFont | ImageFont:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)  # FreeType's scalable default (Pillow ≥ 10.1)


def _png(image: Any) -> bytes:
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _canvas(width: int, height: int) -> tuple[Any, ImageDraw]:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), "white")
    return image, ImageDraw.Draw(image)


def _shapes(rng: random.Random) -> SpotcheckImage:
    circle_colour, square_colour = rng.sample(sorted(_COLOURS), 2)
    n_circles, n_squares = rng.randint(2, 5), rng.randint(1, 4)
    cells = rng.sample(range(12), n_circles + n_squares)  # a 4 × 3 grid of 80 px cells
    image, draw = _canvas(320, 240)
    for k, cell in enumerate(cells):
        x, y = (cell % 4) * 80 + 15, (cell // 4) * 80 + 15
        if k < n_circles:
            draw.ellipse((x, y, x + 50, y + 50), fill=_COLOURS[circle_colour])
        else:
            draw.rectangle((x, y, x + 50, y + 50), fill=_COLOURS[square_colour])
    return SpotcheckImage("shapes", _png(image), (
        ("count", "image_count", f"How many {circle_colour} circles are in the image?",
         (str(n_circles), _NUMBER_WORDS[n_circles])),
        ("colour", "image_colour", "What colour are the squares in the image?", (square_colour,)),
        ("dog", "image_unanswerable", "What is the name of the dog in the image?", ()),
    ))


def _chart(rng: random.Random) -> SpotcheckImage:
    labels = rng.sample(_FRUITS, 4)
    values = rng.sample(range(10, 60), 3)
    top = rng.randrange(4)
    values.insert(top, max(values) + rng.randint(15, 30))  # clearly the largest
    title = f"{rng.choice(('Fruit', 'Boxes'))} sold in {rng.choice(_MONTHS)}"
    image, draw = _canvas(400, 300)
    draw.text((200, 12), title, fill="black", font=_font(22), anchor="mt")
    scale = 200 / max(values)
    for k, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = 40 + k * 90
        draw.rectangle((x, 270 - value * scale, x + 60, 270), fill=_COLOURS["blue"])
        draw.text((x + 30, 285), label, fill="black", font=_font(14), anchor="mm")
    return SpotcheckImage("chart", _png(image), (
        ("title", "image_chart", "What is the title of the chart?", (title,)),
        ("largest", "image_chart", "Which bar in the chart is the largest?", (labels[top],)),
        ("source", "image_unanswerable", "Which company published the data in this chart?", ()),
    ))


def _sign(rng: random.Random) -> SpotcheckImage:
    code = f"GATE {rng.randint(10, 99)}{rng.choice(_LETTERS)}"
    image, draw = _canvas(360, 120)
    draw.rectangle((8, 8, 352, 112), outline="black", width=4)
    draw.text((180, 60), code, fill="black", font=_font(40), anchor="mm")
    return SpotcheckImage("sign", _png(image), (
        ("text", "image_text", "What does the sign in the image say?", (code,)),
        ("year", "image_unanswerable", "What year is printed on the sign?", ()),
    ))


def _table(rng: random.Random) -> SpotcheckImage:
    items = rng.sample(_ITEMS, 3)
    prices = [f"{rng.randint(1, 9)}.{rng.choice((0, 25, 50, 75)):02d}" for _ in items]
    image, draw = _canvas(300, 170)
    rows = [("Item", "Price"), *zip(items, prices, strict=True)]
    for r, (item, price) in enumerate(rows):
        y = 10 + r * 38
        draw.rectangle((10, y, 290, y + 38), outline="black", width=2)
        draw.line((170, y, 170, y + 38), fill="black", width=2)
        font = _font(20)
        draw.text((20, y + 19), item, fill="black", font=font, anchor="lm")
        draw.text((180, y + 19), price, fill="black", font=font, anchor="lm")
    pick = rng.randrange(3)
    return SpotcheckImage("table", _png(image), (
        ("cell", "image_table", f"In the table, what is the price of {items[pick]}?", (prices[pick],)),
    ))


def draw_spotcheck(seed: int = 0, sets: int = SETS) -> list[SpotcheckImage]:
    """The spot-check's images and questions for `seed` (pure: nothing is written): `sets` drawings
    of each kind, named `<kind>-<k>`, all from one generator."""
    if sets < 1:
        raise ValueError(f"sets must be >= 1, got {sets}")
    rng = random.Random(seed)
    return [dataclasses.replace(img, name=f"{img.name}-{k}") for k in range(1, sets + 1)
            for img in (_shapes(rng), _chart(rng), _sign(rng), _table(rng))]


def write_spotcheck(folder: Path, seed: int = 0) -> Path:
    """Write the images and the QA file into `folder`; returns the QA file's path."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for img in draw_spotcheck(seed):
        (folder / f"{img.name}.png").write_bytes(img.png)
        for suffix, category, question, answers in img.questions:
            lines.append(json.dumps({"id": f"img-{img.name}-{suffix}", "category": category, "question": question,
                                     "answers": list(answers), "answerable": bool(answers),
                                     "images": [f"{img.name}.png"]}))
    path = folder / SPOTCHECK_FILE
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def spotcheck_file(seed: int = 0, cache: Path | None = None) -> Path:
    """The spot-check's QA file in the workbench cache (`<cache>/image-spotcheck/vV-seed-N`), written
    on first use (`GENERATOR_VERSION` names the folder: a changed drawing is written anew)."""
    from workbench.embedded import cache_base

    folder = (cache or cache_base()) / "image-spotcheck" / f"v{GENERATOR_VERSION}-seed-{seed}"
    path = folder / SPOTCHECK_FILE
    return path if path.exists() else write_spotcheck(folder, seed)
