"""Static files under addresses that change with their content, so browsers may keep them for a year.

`url_for("static", filename="css/shop.css")` gives `/static/css/shop.css?v=<hash of the file's bytes>`. A response
to a URL whose `v` is the file's current hash is `public, max-age=31536000, immutable`: a new deploy that changes
the file changes its address, so no browser ever runs yesterday's script against today's page. A URL with an old or
missing `v` (a page cached before the deploy) still gets the file, with Flask's default revalidation.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from flask import Flask, request
from flask.wrappers import Response

VERSION_ARGUMENT = "v"
IMMUTABLE = "public, max-age=31536000, immutable"
HASH_LENGTH = 12


@lru_cache(maxsize=512)
def hash_of_file(path: str, modified_ns: int, size: int) -> str:
    """The first characters of the file's SHA-256; keyed by time and size so an edited file hashes anew."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return digest[:HASH_LENGTH]


def content_version(app: Flask, filename: str) -> str | None:
    """The version of a static file as its URL carries it, or None when no such file exists."""
    if not app.static_folder:
        return None
    folder = Path(app.static_folder).resolve()
    path = (folder / filename).resolve()
    # A name that leaves the static folder is never hashed (send_from_directory would refuse it anyway).
    if not path.is_relative_to(folder):
        return None
    try:
        status = path.stat()
    except OSError:
        return None
    return hash_of_file(str(path), status.st_mtime_ns, status.st_size)


def init_app(app: Flask) -> None:
    """Version every static URL the app builds, and let browsers keep a versioned file for a year."""
    # Files do not change under a running server, except in development: hashing is then checked by time and
    # size on every URL. Otherwise each file's version is looked up once (a stat and two path resolutions cost
    # about 60 µs, and a release page builds half a dozen static URLs). Only existing files are remembered.
    known: dict[str, str] = {}

    def version_of(filename: str) -> str | None:
        if app.debug:
            return content_version(app, filename)
        version = known.get(filename)
        if version is None:
            version = content_version(app, filename)
            if version is not None:
                known[filename] = version
        return version

    @app.url_defaults
    def add_content_version(endpoint: str, values: dict) -> None:
        if endpoint != "static" or VERSION_ARGUMENT in values or "filename" not in values:
            return
        version = version_of(values["filename"])
        if version:
            values[VERSION_ARGUMENT] = version

    @app.after_request
    def keep_versioned_files(response: Response) -> Response:
        if request.endpoint != "static" or response.status_code not in (200, 304):
            return response
        asked = request.args.get(VERSION_ARGUMENT)
        filename = (request.view_args or {}).get("filename", "")
        if asked and asked == version_of(filename):
            response.headers["Cache-Control"] = IMMUTABLE
            response.expires = None
        if response.status_code == 200 and response.mimetype in app.config.get("COMPRESS_MIMETYPES", ()):
            read_into_memory(response)
        return response


def read_into_memory(response: Response) -> None:
    """Turn a streamed static file into bytes, closing the file, so Flask-Compress compresses it whole.

    Streamed responses are never compressed (COMPRESS_STREAMS is off, for the CSV exports' sake), and the shop's
    styles and scripts are a few kilobytes each, kept by browsers for a year once fetched.
    """
    try:
        data = b"".join(response.iter_encoded())
    finally:
        response.close()
    response.direct_passthrough = False
    response.set_data(data)
