from __future__ import annotations

import doctest
import xml.etree.ElementTree as ET

from lookfirst.labelstudio import config


def test_doctests():
    assert doctest.testmod(config).failed == 0


def test_labeling_config_has_one_image_slot_per_image_and_every_field():
    root = ET.fromstring(config.labeling_config(n_images=2))
    tags = [(e.tag, e.get("name")) for e in root if e.get("name")]
    assert tags == [("Image", "image_0"), ("Image", "image_1"), ("Text", "question"), ("TextArea", "answer"),
                    ("Choices", "bucket"), ("TextArea", "key_words"), ("TextArea", "description")]
    assert [c.get("value") for c in root.find("Choices")] == ["easy", "medium", "hard"]


def test_prediction_round_trips_through_annotation_parsing():
    values = {"answer": "4", "bucket": "medium", "key_words": ["red", "circle"], "description": "two shapes"}
    assert config.annotation_values(config.prediction_result(values)) == values
    # Empty fields are not predicted; an unscored bucket is not a choice.
    assert config.prediction_result({"answer": None, "bucket": "unscored", "key_words": [], "description": None}) == []


def test_annotation_parsing_normalises_text():
    result = [{"from_name": "answer", "value": {"text": ["  7 "]}},
              {"from_name": "description", "value": {"text": ["   "]}},
              {"from_name": "key_words", "value": {"text": ["a,, b\nc "]}},
              {"from_name": "bucket", "value": {"choices": []}}]
    assert config.annotation_values(result) == {"answer": "7", "description": None, "key_words": ["a", "b", "c"]}
