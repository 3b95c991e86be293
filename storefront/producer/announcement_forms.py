"""Forms of the producer's announcement pages."""

from __future__ import annotations

from flask_wtf import FlaskForm


class SendAnnouncementForm(FlaskForm):
    """Only the CSRF token: sending is a POST from the preview, so no link or other site can trigger it."""
