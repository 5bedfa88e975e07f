"""Which format a source is in (sniffed from the keys of its first rows), and reading it row by row."""
from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Callable, Iterator

from lookfirst.ingest.readers import easyr1, folder, hf, llamafactory, llava, trl, verl
from lookfirst.ingest.readers.common import (
    DATA_SUFFIXES,
    FORMATS,
    MAX_NESTING,
    METADATA_NAMES,
    ImageResolver,
    Record,
    RecordItem,
    RowError,
    RowProblem,
    SourceRow,
    UnreadableSourceError,
    metadata_file,
    open_records,
    too_deep,
    unknown_format,
)

Parser = Callable[[Record, int, ImageResolver], SourceRow]
PARSERS: dict[str, Parser] = {
    "easyr1": easyr1.parse_record,
    "verl": verl.parse_record,
    "trl": trl.parse_record,
    "llava": llava.parse_record,
    "llamafactory": llamafactory.parse_record,
    "hf": hf.parse_record,
    "folder": folder.parse_record,
}
SNIFF_ROWS = 20
VERL_KEYS = frozenset({"reward_model", "data_source", "ability", "extra_info"})


def detect_format(path: Path) -> str:
    path = _existing(path)
    if folder.is_zip(path):
        member = folder.zip_data_member(path)
        if Path(member).name in METADATA_NAMES:
            return "folder"
    elif path.is_dir() and metadata_file(path):
        return "folder"
    elif path.is_file() and path.suffix.lower() not in DATA_SUFFIXES:
        raise unknown_format(f"cannot detect the format of {path.name}: not one of {', '.join(DATA_SUFFIXES)}, .zip")
    keys = _sniff_keys(path)
    fmt = format_of_keys(keys)
    if fmt is None:
        raise unknown_format(f"cannot detect the format of {path.name}: columns {', '.join(sorted(keys)) or 'none'}")
    return fmt


def format_of_keys(keys: set[str]) -> str | None:
    if "messages" in keys:
        return "llamafactory"
    if "conversations" in keys:
        return "llava"
    if "prompt" in keys:
        return "verl" if keys & VERL_KEYS else "trl"
    if "problem" in keys:
        return "easyr1"
    if keys & set(hf.IMAGE_COLUMNS) and keys & set(hf.QUESTION_COLUMNS):
        return "hf"
    return None


def read_source(path: Path, fmt: str = "auto", images_dir: Path | None = None) -> Iterator[SourceRow | RowError]:
    """Rows in source order. Whole-source problems raise now; a bad row becomes a RowError and reading goes on."""
    path = _existing(path)
    if fmt == "auto":
        fmt = detect_format(path)
    elif fmt not in FORMATS:
        raise unknown_format(f"unknown format {fmt!r}")
    images_dir = Path(images_dir).resolve() if images_dir else None
    if images_dir and not images_dir.is_dir():
        raise UnreadableSourceError(f"images folder not found: {images_dir}")
    items = folder.open_zip_records(path, images_dir) if folder.is_zip(path) else open_records(path, images_dir)
    return _rows(items, PARSERS[fmt])


def _rows(items: Iterator[RecordItem], parse: Parser) -> Iterator[SourceRow | RowError]:
    for item in items:
        yield item if isinstance(item, RowError) else _parse(item, parse)


def _parse(item: tuple[int, Record, ImageResolver], parse: Parser) -> SourceRow | RowError:
    row, record, images = item
    column = too_deep(record)
    if column is not None:
        return RowError(row, column, f"value nests lists or objects more than {MAX_NESTING} levels deep")
    try:
        return parse(record, row, images)
    except RowProblem as problem:
        return RowError(row, problem.field, problem.reason)
    except Exception as exc:  # a shape no check foresaw must not stop a long import: report the row
        return RowError(row, "row", f"could not read the row: {type(exc).__name__}: {exc}")


def _existing(path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise UnreadableSourceError(f"source not found: {path}")
    return path


def _sniff_keys(path: Path) -> set[str]:
    items = folder.open_zip_records(path, None) if folder.is_zip(path) else open_records(path, None)
    records = [item[1] for item in islice(items, SNIFF_ROWS * 5) if not isinstance(item, RowError)][:SNIFF_ROWS]
    if not records:
        raise unknown_format(f"cannot detect the format of {path.name}: no readable rows")
    return set().union(*records)
