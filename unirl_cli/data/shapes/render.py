"""Draw a correct scene for any GenEval-style metadata of the shapes world.

A scene is a list of `SceneObject`s on the 4 x 4 grid (see `spec`). `layout_scene` places exactly the
objects the include clauses ask for (no distractors, so exclude clauses hold too) with a seeded generator;
`draw_scene` paints them anti-aliased: shapes are drawn 8x larger and box-filtered down, so edge pixels are
true blends of the shape's colour and the background, as a real renderer (or a VQ decoder) produces.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Mapping, Sequence

from PIL import Image, ImageDraw

from unirl_cli.errors import UnirlError
from unirl_cli.data.shapes.spec import BACKGROUND, COLOR_NAMES, COLORS, GRID_SIZE, IMAGE_SIZE, SHAPES, cell_box

SUPERSAMPLE = 8
# Where a relation puts the subject's cell relative to its target's: (row step, column step).
RELATION_STEPS = {"left of": (0, -1), "right of": (0, 1), "above": (-1, 0), "below": (1, 0)}


@dataclass(frozen=True)
class SceneObject:
    """One shape of a scene: its class, colour and grid cell."""

    class_name: str
    color: str
    row: int
    col: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        """Pixel box (x1, y1, x2, y2), x2/y2 one past the last pixel, as GenEval's detector reports it."""
        return cell_box(self.row, self.col)


def _unit_polygons(shape: str) -> list[tuple[str, list[tuple[float, float]]]]:
    """The shape as ("fill" | "hole", polygon or ellipse box) parts in the unit square, y downwards."""
    if shape == "circle":
        return [("ellipse", [(0.0, 0.0), (1.0, 1.0)])]
    if shape == "ring":
        return [("ellipse", [(0.0, 0.0), (1.0, 1.0)]), ("hole", [(0.27, 0.27), (0.73, 0.73)])]
    if shape == "square":
        return [("polygon", [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)])]
    if shape == "triangle":
        return [("polygon", [(0.5, 0.0), (1.0, 1.0), (0.0, 1.0)])]
    if shape == "diamond":
        return [("polygon", [(0.5, 0.0), (1.0, 0.5), (0.5, 1.0), (0.0, 0.5)])]
    if shape == "cross":
        third, two_thirds = 1 / 3, 2 / 3
        return [("polygon", [(third, 0.0), (two_thirds, 0.0), (two_thirds, 1.0), (third, 1.0)]),
                ("polygon", [(0.0, third), (1.0, third), (1.0, two_thirds), (0.0, two_thirds)])]
    raise UnirlError(f"unknown shape {shape!r}; the shapes world has {', '.join(SHAPES)}")


def _draw_object(draw: ImageDraw.ImageDraw, obj: SceneObject) -> None:
    x1, y1, x2, y2 = (v * SUPERSAMPLE for v in obj.box)
    width, height = x2 - x1, y2 - y1

    def to_canvas(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        # Pixel (i, j) covers [i, i+1); the last covered pixel of a side of length w is w - 1.
        return [(x1 + u * (width - 1), y1 + v * (height - 1)) for u, v in points]

    fill = COLORS[obj.color]
    for kind, points in _unit_polygons(obj.class_name):
        if kind == "polygon":
            draw.polygon(to_canvas(points), fill=fill)
        elif kind == "ellipse":
            draw.ellipse(to_canvas(points), fill=fill)
        else:
            draw.ellipse(to_canvas(points), fill=BACKGROUND)


def draw_scene(objects: Sequence[SceneObject]) -> Image.Image:
    """The 64 px RGB image of `objects` on the grey background."""
    canvas_size = IMAGE_SIZE * SUPERSAMPLE
    canvas = Image.new("RGB", (canvas_size, canvas_size), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for obj in objects:
        _draw_object(draw, obj)
    return canvas.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX)


def check_metadata(metadata: Mapping) -> None:
    """Raise UnirlError unless every clause names a shape and colour of this world and the scene fits the grid."""
    include = metadata.get("include")
    if not isinstance(include, list) or not include:
        raise UnirlError(f"prompt {metadata.get('prompt')!r} has no 'include' clauses; nothing to draw")
    for clause in include + list(metadata.get("exclude", [])):
        if clause.get("class") not in SHAPES:
            raise UnirlError(f"shape {clause.get('class')!r} is not in the shapes world; use one of {', '.join(SHAPES)}")
        if clause.get("color") is not None and clause["color"] not in COLORS:
            raise UnirlError(f"colour {clause['color']!r} is not in the shapes world; use one of {', '.join(COLOR_NAMES)}")
    total = sum(int(clause["count"]) for clause in include)
    if total > GRID_SIZE * GRID_SIZE:
        raise UnirlError(f"prompt {metadata.get('prompt')!r} asks for {total} objects; a scene holds at most "
                         f"{GRID_SIZE * GRID_SIZE}")


def _relation_cells(relation: str, targets: Sequence[SceneObject], free: set[tuple[int, int]]) -> list[tuple[int, int]]:
    """Free cells in line with every target on the relation's side (same row for left/right, column for above/below)."""
    row_step, col_step = RELATION_STEPS[relation]
    cells = []
    for row, col in sorted(free):
        ok = True
        for target in targets:
            d_row, d_col = row - target.row, col - target.col
            along = d_row * row_step + d_col * col_step
            across = d_col if row_step else d_row
            ok = ok and along > 0 and across == 0
        if ok:
            cells.append((row, col))
    return cells


def _try_layout(metadata: Mapping, rng: random.Random) -> list[SceneObject] | None:
    free = {(row, col) for row in range(GRID_SIZE) for col in range(GRID_SIZE)}
    groups: list[list[SceneObject]] = []
    for clause in metadata["include"]:
        group = []
        for _ in range(int(clause["count"])):
            if clause.get("position") is not None:
                relation, target_index = clause["position"]
                candidates = _relation_cells(relation, groups[target_index], free)
            else:
                candidates = sorted(free)
            if not candidates:
                return None
            cell = rng.choice(candidates)
            free.discard(cell)
            color = clause.get("color") or rng.choice(COLOR_NAMES)
            group.append(SceneObject(clause["class"], color, *cell))
        groups.append(group)
    return [obj for group in groups for obj in group]


def layout_scene(metadata: Mapping, seed: int) -> list[SceneObject]:
    """Objects satisfying `metadata`, placed by a generator seeded with `seed` (same seed, same scene)."""
    check_metadata(metadata)
    rng = random.Random(seed)
    for _ in range(1000):
        objects = _try_layout(metadata, rng)
        if objects is not None:
            return objects
    raise UnirlError(f"could not lay out prompt {metadata.get('prompt')!r} on the {GRID_SIZE}x{GRID_SIZE} grid; "
                     f"its position clauses may contradict each other")


def render_scene(metadata: Mapping, seed: int) -> tuple[Image.Image, list[SceneObject]]:
    """A correct image for `metadata` and the objects drawn in it."""
    objects = layout_scene(metadata, seed)
    return draw_scene(objects), objects


def random_scene(rng: random.Random, max_objects: int = 4) -> list[SceneObject]:
    """1..`max_objects` random shapes in random colours and cells (for tokenizer and detector training/tests)."""
    cells = rng.sample([(r, c) for r in range(GRID_SIZE) for c in range(GRID_SIZE)], rng.randint(1, max_objects))
    return [SceneObject(rng.choice(SHAPES), rng.choice(COLOR_NAMES), row, col) for row, col in cells]
