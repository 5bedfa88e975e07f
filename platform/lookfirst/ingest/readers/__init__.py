"""Read every input format into SourceRow / RowError, without Django and without decoding images."""
from lookfirst.ingest.readers.common import (
    FORMATS,
    ImageRef,
    RowError,
    SourceRow,
    UnknownFormatError,
    UnreadableSourceError,
    resolve_image_path,
)
from lookfirst.ingest.readers.detect import detect_format, read_source

__all__ = [
    "FORMATS",
    "ImageRef",
    "RowError",
    "SourceRow",
    "UnknownFormatError",
    "UnreadableSourceError",
    "detect_format",
    "read_source",
    "resolve_image_path",
]
