"""Compressed text responses (Brotli, gzip, Zstandard) with Flask-Compress, for buyers on phones.

The release page's HTML, CSS and scripts shrink to about a fifth. Images are left alone (JPEG, PNG and WebP are
compressed already), and so are CSV exports: a producer's export streams row by row from the database, its type
is not in the list below, and no streamed response is compressed, so it goes out as it is read. Small answers (the
live count JSON) cost more to compress than they save and go out as they are (COMPRESS_MIN_SIZE).
"""

from __future__ import annotations

from flask import Flask

from storefront.extensions import compress

COMPRESSED_TYPES = [
    "text/html",
    "text/css",
    "text/plain",
    "text/javascript",
    "application/javascript",
    "application/json",
    "application/atom+xml",
    "application/xml",
    "image/svg+xml",
]


def init_app(app: Flask) -> None:
    """Compress text responses of 500 bytes or more for clients that accept it."""
    app.config.setdefault("COMPRESS_MIMETYPES", COMPRESSED_TYPES)
    app.config.setdefault("COMPRESS_MIN_SIZE", 500)
    # Nothing streamed is compressed: an export must go out row by row, and a compressor holds rows back until its
    # buffer fills. Static files are read whole first (storefront/static_files.py) and so are compressed.
    app.config.setdefault("COMPRESS_STREAMS", False)
    # Brotli 4 and gzip 6 cost about a millisecond on a release page: cheap next to rendering it.
    app.config.setdefault("COMPRESS_BR_LEVEL", 4)
    app.config.setdefault("COMPRESS_LEVEL", 6)
    compress.init_app(app)
