"""What we send to Label Studio and how we read its annotations back: pure functions, no I/O.

>>> annotation_values([{"from_name": "bucket", "type": "choices", "value": {"choices": ["hard"]}},
...                    {"from_name": "key_words", "type": "textarea", "value": {"text": ["red, circle", "big"]}}])
{'bucket': 'hard', 'key_words': ['red', 'circle', 'big']}
"""
from __future__ import annotations

import re

FIELDS = ("answer", "bucket", "key_words", "description")
BUCKET_CHOICES = ("easy", "medium", "hard")
TEXT_FIELDS = ("answer", "key_words", "description")


def labeling_config(*, n_images: int) -> str:
    images = "\n".join(f'  <Image name="image_{i}" value="$image_{i}"/>' for i in range(max(n_images, 1)))
    choices = "".join(f'<Choice value="{c}"/>' for c in BUCKET_CHOICES)
    return f"""<View>
{images}
  <Header value="Question"/>
  <Text name="question" value="$question"/>
  <Header value="Answer"/>
  <TextArea name="answer" toName="question" editable="true" maxSubmissions="1" rows="2"/>
  <Header value="Bucket"/>
  <Choices name="bucket" toName="question" choice="single" showInline="true">{choices}</Choices>
  <Header value="Key words (comma-separated)"/>
  <TextArea name="key_words" toName="question" editable="true" maxSubmissions="1" rows="1"/>
  <Header value="Description of the image"/>
  <TextArea name="description" toName="question" editable="true" maxSubmissions="1" rows="3"/>
</View>"""


def item_values(item) -> dict:
    """The item fields a Label Studio task shows and an annotation can set."""
    return {"answer": item.answer, "bucket": item.bucket, "key_words": list(item.key_words),
            "description": item.description}


def task_data(*, item, pool_name: str, image_urls: list[str], n_images: int) -> dict:
    data = {"item_id": item.pk, "item_version": item.version, "pool": pool_name, "question": item.question}
    for i in range(max(n_images, 1)):
        data[f"image_{i}"] = image_urls[i] if i < len(image_urls) else ""
    return data


def prediction_result(values: dict) -> list[dict]:
    """Our current values as a Label Studio prediction (empty fields are left out)."""
    result = []
    if values.get("answer"):
        result.append(_textarea("answer", [values["answer"]]))
    if values.get("bucket") in BUCKET_CHOICES:
        result.append({"from_name": "bucket", "to_name": "question", "type": "choices",
                       "value": {"choices": [values["bucket"]]}})
    if values.get("key_words"):
        result.append(_textarea("key_words", [", ".join(values["key_words"])]))
    if values.get("description"):
        result.append(_textarea("description", [values["description"]]))
    return result


def _textarea(name: str, text: list[str]) -> dict:
    return {"from_name": name, "to_name": "question", "type": "textarea", "value": {"text": text}}


def annotation_values(result: list[dict] | None) -> dict:
    """The item fields an annotation sets. A field absent from the result is left as it is."""
    out: dict = {}
    for region in result or []:
        name, value = region.get("from_name"), region.get("value") or {}
        if name == "bucket":
            choices = value.get("choices") or []
            if choices:
                out["bucket"] = choices[0]
        elif name == "key_words":
            parts = (p.strip() for line in value.get("text") or [] for p in re.split(r"[,\n]", line))
            out["key_words"] = [p for p in parts if p]
        elif name in ("answer", "description"):
            text = "\n".join(value.get("text") or []).strip()
            out[name] = text or None
    return out


def values_differ(current: dict, wanted: dict) -> dict:
    """The fields of `wanted` whose value differs from `current`: {field: [current, wanted]}."""
    return {k: [current.get(k), v] for k, v in wanted.items() if current.get(k) != v}
