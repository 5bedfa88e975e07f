"""Image folders (HF imagefolder): images beside one metadata.jsonl/.json/.csv, in a directory or a .zip.

Zip members are read in memory, never extracted; a reference that is absolute or holds '..' is refused
before any lookup, so no member outside the archive's root is ever read.
"""
from __future__ import annotations

import posixpath
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from lookfirst.ingest.readers import hf
from lookfirst.ingest.readers.common import (
    DATA_SUFFIXES,
    METADATA_NAMES,
    NOT_DATA_NAMES,
    FileImages,
    ImageRef,
    ImageResolver,
    RecordItem,
    RowError,
    RowProblem,
    UnreadableSourceError,
    check_relative_ref,
    csv_items,
    first_char,
    json_array_items,
    jsonl_items,
    json_array_check,
)

# Bounds memory per image before the image checks apply the configured limit.
MAX_MEMBER_BYTES = 256 * 1024 * 1024
# What a damaged, encrypted or oddly compressed member raises on read.
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, NotImplementedError, RuntimeError, EOFError)
ZIP_DATA_SUFFIXES = tuple(suffix for suffix in DATA_SUFFIXES if suffix != ".parquet")

parse_record = hf.parse_record


def is_zip(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".zip"


def zip_data_member(path: Path) -> str:
    """The member holding the rows: metadata.* nearest the root, else the only data file."""
    with _open(path) as archive:
        return _data_member(archive)


def open_zip_records(path: Path, images_dir: Path | None) -> Iterator[RecordItem]:
    with _open(path) as archive:
        member = _data_member(archive)
        try:
            with archive.open(member) as stream:
                stream.read(1)  # encrypted or damaged members fail here, before any row
            array = _json_array(archive, member)
        except ZIP_ERRORS as exc:
            raise UnreadableSourceError(f"{member} cannot be read from the zip: {exc}") from None
    return _zip_records(path, member, images_dir, array)


def _zip_records(path: Path, member: str, images_dir: Path | None, array: bool) -> Iterator[RecordItem]:
    with _open(path) as archive:
        resolver: ImageResolver = (
            FileImages(images_dir) if images_dir else ZipImages(archive, posixpath.dirname(member))
        )
        with archive.open(member) as stream:
            if array:
                items = json_array_items(lambda: archive.open(member))
            elif member.lower().endswith(".csv"):
                items = csv_items(stream)
            else:
                items = jsonl_items(stream)
            last = 0
            try:
                for item in items:
                    last = item.row if isinstance(item, RowError) else item[0]
                    yield item if isinstance(item, RowError) else (item[0], item[1], resolver)
            except ZIP_ERRORS as exc:  # a damaged member: report where it stopped instead of raising mid-stream
                yield RowError(last + 1, "file", f"{member} cannot be read from the zip: {exc}")


@dataclass(frozen=True)
class ZipImages:
    archive: zipfile.ZipFile
    root: str  # folder of the metadata member; references are relative to it

    def __call__(self, ref: str, field: str) -> ImageRef:
        try:
            check_relative_ref(ref)
        except ValueError as exc:
            raise RowProblem(field, str(exc)) from None
        name = posixpath.normpath(posixpath.join(self.root, ref))
        try:
            info = self.archive.getinfo(name)
        except KeyError:
            raise RowProblem(field, f"image file not found in the zip: {ref}") from None
        if info.is_dir():
            raise RowProblem(field, f"image path is not a file: {ref}")
        if info.file_size > MAX_MEMBER_BYTES:
            raise RowProblem(field, f"image is {info.file_size:,} bytes, over the {MAX_MEMBER_BYTES:,}-byte limit")
        try:
            data = self.archive.read(info)
        except ZIP_ERRORS as exc:
            raise RowProblem(field, f"image could not be read from the zip: {ref}: {exc}") from None
        return ImageRef(data=data, path=None, name=ref)


def _open(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnreadableSourceError(f"not a readable zip file: {path.name}: {exc}") from None


def _data_member(archive: zipfile.ZipFile) -> str:
    infos = archive.infolist()
    if not infos:
        raise UnreadableSourceError("the zip is empty")
    names = [info.filename for info in infos if not info.is_dir() and _safe(info.filename)]
    metadata = [name for name in names if posixpath.basename(name) in METADATA_NAMES]
    if metadata:
        depth = min(name.count("/") for name in metadata)
        nearest = [name for name in metadata if name.count("/") == depth]
        if len({posixpath.dirname(name) for name in nearest}) > 1:
            raise UnreadableSourceError(f"the zip holds several metadata files: {', '.join(sorted(nearest))}")
        return min(nearest, key=lambda name: METADATA_NAMES.index(posixpath.basename(name)))
    data = [name for name in names if name.lower().endswith(ZIP_DATA_SUFFIXES)
            and posixpath.basename(name) not in NOT_DATA_NAMES]
    if len(data) == 1:
        return data[0]
    found = f"several data files: {', '.join(data)}" if data else "no data file"
    raise UnreadableSourceError(f"the zip holds no metadata.jsonl, metadata.json or metadata.csv, and {found}")


def _safe(name: str) -> bool:
    try:
        check_relative_ref(name)
    except ValueError:
        return False
    return not any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))


def _json_array(archive: zipfile.ZipFile, member: str) -> bool:
    """True when the member is a JSON array of rows (checked whole, streaming); False for JSON Lines."""
    if not member.lower().endswith(".json"):
        return False
    with archive.open(member) as stream:
        if first_char(stream) != b"[":
            return False
    json_array_check(lambda: archive.open(member), member)
    return True
