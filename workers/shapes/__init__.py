"""The shapes world: a deterministic procedural image-question generator for staged RL pools."""

from workers.shapes.pool import write_pool
from workers.shapes.questions import ShapesItem, generate_items
from workers.shapes.world import Scene, Shape, count_shapes_in_image, render, sample_scene

__all__ = [
    "Scene",
    "Shape",
    "ShapesItem",
    "count_shapes_in_image",
    "generate_items",
    "render",
    "sample_scene",
    "write_pool",
]
