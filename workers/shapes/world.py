"""The shapes world: scenes of flat coloured shapes on white, their rendering, and a pixel checker.

Rendering draws without anti-aliasing, so every shape pixel is exactly its palette colour, and noise
only ever touches background pixels (and stays near white). That is what lets
`count_shapes_in_image` recover the scene from pixels alone, with no access to the scene model.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

CANVAS = 112  # scene coordinates live on a 112 x 112 canvas; `render(size=...)` scales them

KINDS = ("circle", "triangle", "square", "pentagon", "hexagon")
SIDES = {"circle": 0, "triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6}
PLURALS = {kind: kind + "s" for kind in KINDS}

# Saturated and far apart: every colour has a channel below 60, so near-white noise never matches.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 60, 220),
    "yellow": (235, 200, 20),
    "purple": (140, 40, 180),
    "orange": (250, 130, 10),
}
COLOURS = tuple(PALETTE)

SIZES = ("small", "large")
# Circumradius ranges in canvas pixels: a small square (r 9) is still 12 px on a side.
RADIUS = {"small": (9, 11), "large": (15, 18)}

MAX_SHAPES = 6
MARGIN = 2  # free pixels between a shape's bounding circle and the canvas edge
GAP = 2  # free pixels between the bounding circles of any two shapes (no overlap at all)
SAME_COLOUR_GAP = 4  # shapes of one colour must never touch, or the checker would merge them
NOISE_MAX = 20  # background noise subtracts 0..NOISE_MAX from each channel of white
JITTER_PX = 2  # a near-duplicate moves each shape by at most this many pixels per axis


@dataclass
class Shape:
    kind: str
    colour: str
    size: str
    cx: int
    cy: int
    r: int


@dataclass
class Scene:
    shapes: list[Shape]
    noise_seed: int  # 0 = clean background; otherwise seeds the background noise


def _fits(shape: Shape, others: list[Shape]) -> bool:
    if not (MARGIN + shape.r <= shape.cx <= CANVAS - 1 - MARGIN - shape.r):
        return False
    if not (MARGIN + shape.r <= shape.cy <= CANVAS - 1 - MARGIN - shape.r):
        return False
    for other in others:
        gap = SAME_COLOUR_GAP if other.colour == shape.colour else GAP
        if math.hypot(shape.cx - other.cx, shape.cy - other.cy) < shape.r + other.r + gap:
            return False
    return True


def sample_scene(rng: random.Random, n_shapes: int | None = None) -> Scene:
    """A random scene of 1-6 non-overlapping shapes (or exactly `n_shapes`)."""
    n = n_shapes if n_shapes is not None else rng.randint(1, MAX_SHAPES)
    while True:
        shapes: list[Shape] = []
        for _ in range(n):
            kind, colour, size = rng.choice(KINDS), rng.choice(COLOURS), rng.choice(SIZES)
            r = rng.randint(*RADIUS[size])
            for _attempt in range(60):
                lo, hi = MARGIN + r, CANVAS - 1 - MARGIN - r
                shape = Shape(kind, colour, size, rng.randint(lo, hi), rng.randint(lo, hi), r)
                if _fits(shape, shapes):
                    shapes.append(shape)
                    break
            else:
                break  # crowded: start the whole scene again
        if len(shapes) == n:
            noise_seed = rng.randint(1, 2**31 - 1) if rng.random() < 0.5 else 0
            return Scene(shapes=shapes, noise_seed=noise_seed)


def _vertices(kind: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    # Fixed orientations: triangle and pentagon point up, square axis-aligned, hexagon flat-topped.
    n, start = {"triangle": (3, -90.0), "square": (4, 45.0), "pentagon": (5, -90.0), "hexagon": (6, 0.0)}[kind]
    angles = [math.radians(start + 360.0 * k / n) for k in range(n)]
    return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in angles]


def _jittered(scene: Scene, jitter: random.Random) -> list[Shape]:
    moved: list[Shape] = []
    for i, shape in enumerate(scene.shapes):
        dx, dy = jitter.randint(-JITTER_PX, JITTER_PX), jitter.randint(-JITTER_PX, JITTER_PX)
        candidate = Shape(shape.kind, shape.colour, shape.size, shape.cx + dx, shape.cy + dy, shape.r)
        rest = moved + scene.shapes[i + 1 :]
        moved.append(candidate if _fits(candidate, rest) else shape)
    return moved


def render(scene: Scene, jitter: random.Random | None = None, size: int = CANVAS) -> Image.Image:
    """Draw `scene`; with `jitter`, shapes move a pixel or two and the noise is redrawn.

    The jittered image is visually close but never byte-identical (it always gets fresh noise),
    and it keeps every shape's kind, colour and count.
    """
    shapes, noise_seed = scene.shapes, scene.noise_seed
    if jitter is not None:
        shapes = _jittered(scene, jitter)
        noise_seed = jitter.randint(1, 2**31 - 1)
    scale = size / CANVAS
    img = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for shape in shapes:
        cx, cy, r = (shape.cx + 0.5) * scale - 0.5, (shape.cy + 0.5) * scale - 0.5, shape.r * scale
        fill = PALETTE[shape.colour]
        if shape.kind == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        else:
            draw.polygon(_vertices(shape.kind, cx, cy, r), fill=fill)
    if noise_seed:
        pixels = np.asarray(img, dtype=np.int16).copy()
        background = (pixels == 255).all(axis=2)
        rng = np.random.default_rng(noise_seed)
        noise = rng.integers(0, NOISE_MAX + 1, size=pixels.shape, dtype=np.int16)
        pixels[background] -= noise[background]
        img = Image.fromarray(pixels.astype(np.uint8), "RGB")
    return img


def scene_counts(scene: Scene) -> Counter[tuple[str, str]]:
    """Ground-truth (colour, kind) counts, keyed like `count_shapes_in_image`."""
    return Counter((shape.colour, shape.kind) for shape in scene.shapes)


# ---------------------------------------------------------------------------------------------
# Independent pixel checker. It knows the palette and the five outline families, nothing else:
# no scene, no drawing code. Each shape is a connected component of one exact palette colour;
# its kind is the template whose row-width profile (width of each pixel row over the bounding-box
# width, top to bottom) and width/height ratio are closest to the measured ones.

MIN_COMPONENT_PX = 20


def _profile(kind: str, y: float) -> float:
    """Analytic row width / bounding-box width at relative height y (0 = top, 1 = bottom)."""
    if kind == "square":
        return 1.0
    if kind == "circle":
        return 2.0 * math.sqrt(max(0.0, y * (1.0 - y)))
    if kind == "triangle":
        return y
    if kind == "hexagon":  # flat top and bottom, widest at mid-height
        return 1.0 - abs(0.5 - y)
    # pentagon, point up: widest at 0.382 of the height, bottom edge 0.618 of the width
    return y / 0.382 if y < 0.382 else 1.0 - 0.382 * (y - 0.382) / 0.618


_ASPECT = {"square": 1.0, "circle": 1.0, "triangle": 1.155, "hexagon": 1.155, "pentagon": 1.051}


def _components(mask: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """8-connected components of a boolean mask, as (ys, xs) arrays."""
    remaining = set(zip(*(a.tolist() for a in np.nonzero(mask))))
    out = []
    while remaining:
        seed = remaining.pop()
        stack, members = [seed], [seed]
        while stack:
            y, x = stack.pop()
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    p = (y + dy, x + dx)
                    if p in remaining:
                        remaining.remove(p)
                        stack.append(p)
                        members.append(p)
        ys, xs = np.array([p[0] for p in members]), np.array([p[1] for p in members])
        out.append((ys, xs))
    return out


def _classify(ys: np.ndarray, xs: np.ndarray) -> str:
    top, left = ys.min(), xs.min()
    h, w = int(ys.max() - top + 1), int(xs.max() - left + 1)
    widths = np.bincount(ys - top, minlength=h) / w
    rel = (np.arange(h) + 0.5) / h
    best, best_cost = "", math.inf
    for kind in KINDS:
        template = np.array([_profile(kind, y) for y in rel])
        cost = float(np.mean((widths - template) ** 2)) + (w / h - _ASPECT[kind]) ** 2
        if cost < best_cost:
            best, best_cost = kind, cost
    return best


def count_shapes_in_image(img: Image.Image) -> dict[tuple[str, str], int]:
    """Recover {(colour, kind): count} from the pixels of a rendered scene alone."""
    pixels = np.asarray(img.convert("RGB"))
    counts: Counter[tuple[str, str]] = Counter()
    for colour, rgb in PALETTE.items():
        mask = (pixels == np.array(rgb, dtype=np.uint8)).all(axis=2)
        for ys, xs in _components(mask):
            if len(ys) >= MIN_COMPONENT_PX:
                counts[(colour, _classify(ys, xs))] += 1
    return dict(counts)
