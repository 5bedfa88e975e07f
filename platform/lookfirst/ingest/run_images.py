"""The images of one ingest run: each distinct file read once, each distinct content checked and stored once.

Both halves run in the reading thread, beside the row reader. `ImageReader` reads and hashes each
distinct file once and hands the bytes of contents new to the run to the batch. `ImageChecker` settles
a batch: a content whose sha256 is in the Image table was decoded when it was first stored, so only the
size and pixel limits are applied again to its recorded facts; any other is decoded fully. Accepted
files are written by a few threads (creating a file is mostly kernel time) while earlier batches are
written to the database, and waited for before their batch commits, so a committed Image always has its
file.
"""
from __future__ import annotations

import hashlib
import os
import stat
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from lookfirst.ingest.images import ImageFacts, ImageRejected, image_data_check, image_limits_check
from lookfirst.ingest.readers import ImageRef
from lookfirst.pools.models import image_relative_path

CACHE_SIZE = 200_000  # distinct paths and contents remembered per run; all forgotten at once when full
STORE_THREADS = 4

Token = str | ImageRejected  # an image's sha256 (its outcome in ImageChecker.outcomes), or why it cannot be read


class ImageReader:
    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.by_path: dict[Path, Token] = {}
        self.by_identity: dict[tuple[int, int, int, int], str] = {}  # (st_dev, st_ino, size, mtime_ns) -> sha256
        self.seen: set[str] = set()  # shas handed to a batch since the last forget
        self.pending_bytes = 0  # bytes handed to the batch being read

    def admit(self, ref: ImageRef, pending: dict[str, bytes]) -> Token:
        """The sha256 of the image's bytes, added to `pending` if new to the run; or why it cannot be read."""
        if ref.data is not None:
            if len(ref.data) > self.max_bytes:
                return ImageRejected(f"image is {len(ref.data):,} bytes, over the {self.max_bytes:,}-byte limit")
            return self._admit_bytes(ref.data, pending)
        token = self.by_path.get(ref.path)
        if token is None:
            token = self._admit_file(ref.path, pending)
            self.by_path[ref.path] = token
        return token

    def _admit_file(self, path: Path | None, pending: dict[str, bytes]) -> Token:
        """Open first, then fstat: one path lookup per file, and the identity of what was opened."""
        if path is None:
            return ImageRejected("image has neither bytes nor a path")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # NONBLOCK: a FIFO must not hang the run
        except FileNotFoundError:
            return ImageRejected(f"image file not found: {path}")
        except OSError as exc:
            return ImageRejected(f"image file cannot be opened ({exc.strerror}): {path}")
        try:
            st = os.fstat(fd)
            identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            sha = self.by_identity.get(identity)
            if sha is None:
                if not stat.S_ISREG(st.st_mode):
                    return ImageRejected(f"image is not a regular file: {path}")
                if st.st_size > self.max_bytes:
                    return ImageRejected(f"image is {st.st_size:,} bytes, over the {self.max_bytes:,}-byte limit")
                sha = self._admit_bytes(_read(fd, st.st_size), pending)
                self.by_identity[identity] = sha
            return sha
        finally:
            os.close(fd)

    def _admit_bytes(self, data: bytes, pending: dict[str, bytes]) -> str:
        sha = hashlib.sha256(data).hexdigest()
        if sha not in self.seen:
            self.seen.add(sha)
            pending[sha] = data
            self.pending_bytes += len(data)
        return sha

    def forget_if_full(self) -> bool:
        """Between batches only. True when forgotten: the next batch then holds every content it names."""
        if max(len(self.by_path), len(self.by_identity), len(self.seen)) < CACHE_SIZE:
            return False
        self.by_path.clear()
        self.by_identity.clear()
        self.seen.clear()
        return True


def _read(fd: int, size: int) -> bytes:
    """The `size` bytes of an open regular file (fewer if it shrank since its fstat)."""
    data = os.read(fd, size)
    while len(data) < size:
        more = os.read(fd, size - len(data))
        if not more:
            break
        data += more
    return data


class ImageChecker:
    def __init__(self, *, max_bytes: int, max_pixels: int, media_root: Path) -> None:
        self.max_bytes, self.max_pixels = max_bytes, max_pixels
        self.media_root = str(media_root)
        self.outcomes: dict[str, ImageFacts | ImageRejected] = {}
        self._writer = ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="ingest-store")

    def close(self) -> None:
        self._writer.shutdown(wait=True)

    def settle(self, cursor, pending: dict[str, bytes]) -> tuple[list[ImageFacts], list[Future]]:
        """Check a batch's new contents and start writing the accepted ones.

        Returns the contents new to the Image table, and the writes to wait for before they are recorded.
        """
        if not pending:
            return [], []
        cursor.execute("SELECT sha256, width, height, format, size_bytes FROM pools_image WHERE sha256 = ANY(%s)",
                       [list(pending)])
        known = {row[0]: ImageFacts(*row) for row in cursor.fetchall()}
        new, files = [], []
        for sha, data in pending.items():
            facts = known.get(sha)
            try:
                if facts is None:
                    facts = image_data_check(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels, sha256=sha)
                    new.append(facts)
                else:
                    image_limits_check(facts, max_bytes=self.max_bytes, max_pixels=self.max_pixels)
            except ImageRejected as exc:
                self.outcomes[sha] = exc
                continue
            self.outcomes[sha] = facts
            files.append((os.path.join(self.media_root, image_relative_path(sha, facts.format)), data))
        writes = [self._writer.submit(_store_files, files[start::STORE_THREADS])
                  for start in range(STORE_THREADS) if files[start::STORE_THREADS]]
        return new, writes

    def record(self, cursor, new: list[ImageFacts]) -> None:
        """Insert the new images' rows in the caller's transaction; a concurrent run may have added some."""
        if new:
            cursor.execute(
                "INSERT INTO pools_image (sha256, width, height, format, size_bytes, created_at) "
                "SELECT *, now() FROM unnest(%s::varchar[], %s::integer[], %s::integer[], %s::varchar[], "
                "%s::bigint[]) ON CONFLICT DO NOTHING",
                [[f.sha256 for f in new], [f.width for f in new], [f.height for f in new],
                 [f.format for f in new], [f.size_bytes for f in new]],
            )

    @staticmethod
    def wait_stored(writes: list[Future]) -> None:
        """Block until these writes are on disk; raise the first write error."""
        for write in writes:
            write.result()


def _store_files(files: list[tuple[str, bytes]]) -> None:
    """Write each file straight to its content address; O_EXCL makes one writer create it.

    A file already there with the right length holds these bytes (it is named by their sha256); one with
    another length is what a killed writer left, or a write still going on in another run, and is replaced
    atomically. Nothing reads a file before the batch that stores it commits, so no reader sees half of one.
    Writing in place costs one directory entry instead of two (a temporary name, then a rename): on ext4
    that is the difference between about 25 and 150-400 microseconds a file.
    """
    for target, data in files:
        try:
            fd = _create(target)
        except FileExistsError:
            if os.stat(target).st_size != len(data):
                _replace(target, data)
            continue
        try:
            _write_all(fd, data)
        except BaseException:
            os.close(fd)
            os.unlink(target)
            raise
        os.close(fd)


def _create(path: str) -> int:
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)


def _replace(target: str, data: bytes) -> None:
    tmp = f"{target}.{os.getpid()}-{threading.get_ident()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, target)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
