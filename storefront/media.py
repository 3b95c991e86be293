"""Serve producer photos from UPLOAD_FOLDER (user data, kept apart from static/)."""

from flask import Blueprint, current_app, send_from_directory

bp = Blueprint("media", __name__)


@bp.get("/media/<path:filename>")
def show_media(filename: str):
    """Send an uploaded file; unknown or escaping paths are a 404."""
    return send_from_directory(current_app.config["UPLOAD_FOLDER"], filename, max_age=86400)
