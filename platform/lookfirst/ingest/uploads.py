"""Upload handling: the size bound is enforced while the bytes arrive, not after."""
from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler


class UploadTooLarge(Exception):
    pass


class BoundedUploadHandler(TemporaryFileUploadHandler):
    """Streams to a temporary file and aborts the request once LOOKFIRST_MAX_UPLOAD_BYTES is passed."""

    def __init__(self, request=None):
        super().__init__(request)
        self.received = 0
        self.limit = settings.LOOKFIRST_MAX_UPLOAD_BYTES

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length and content_length > self.limit + 64 * 1024:  # multipart framing overhead
            self.request.upload_too_large = True
            raise StopUpload(connection_reset=True)
        return None

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            self.request.upload_too_large = True
            raise StopUpload(connection_reset=True)
        return super().receive_data_chunk(raw_data, start)
