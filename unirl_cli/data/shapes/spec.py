"""What the shapes world contains: shape names, GenEval's ten colours as RGB, the background and the grid.

Scenes are 64 px squares split into a 4 x 4 grid of 16 px cells; each object fills one cell (a 14 px shape
centred in it). The grid matches the mini model's 8 px VQ patches, so every object is exactly 2 x 2 image
tokens, and the 2 px gap between neighbours keeps objects apart for the detector.
"""

from __future__ import annotations

# Shapes a 14 px classical detector separates from geometry alone (fill ratio, convexity, holes, symmetry).
SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring")

# GenEval's colour names, in its order; RGB values chosen far apart in direction from the background, so
# a pixel blended with the background (anti-aliasing, blur) still points at its own colour.
COLORS = {
    "red": (220, 30, 30),
    "orange": (255, 150, 0),
    "yellow": (250, 230, 30),
    "green": (20, 135, 40),
    "blue": (30, 80, 230),
    "purple": (140, 40, 190),
    "pink": (255, 135, 205),
    "brown": (125, 70, 25),
    "black": (20, 20, 20),
    "white": (240, 240, 240),
}
COLOR_NAMES = tuple(COLORS)

# Mid grey: none of the ten colours, and black and white sit on opposite sides of it.
BACKGROUND = (128, 128, 128)

IMAGE_SIZE = 64
GRID_SIZE = 4
CELL_SIZE = IMAGE_SIZE // GRID_SIZE
OBJECT_SIZE = 14
MAX_OBJECTS = GRID_SIZE * GRID_SIZE
# The minis' image tokens: 8 px patches, so an object is 2 x 2 tokens and a scene 8 x 8 = 64.
TOKEN_PATCH = 8
NUM_IMAGE_TOKENS = (IMAGE_SIZE // TOKEN_PATCH) ** 2


def cell_box(row: int, col: int) -> tuple[int, int, int, int]:
    """The (x1, y1, x2, y2) pixel box of the shape drawn in grid cell (row, col); x2, y2 exclusive."""
    margin = (CELL_SIZE - OBJECT_SIZE) // 2
    x1, y1 = col * CELL_SIZE + margin, row * CELL_SIZE + margin
    return x1, y1, x1 + OBJECT_SIZE, y1 + OBJECT_SIZE
