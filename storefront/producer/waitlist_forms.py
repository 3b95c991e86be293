"""Forms of the producer's waitlist pages: buttons that change a list, nothing typed."""

from __future__ import annotations

from flask_wtf import FlaskForm


class WaitlistActionForm(FlaskForm):
    """A button that changes a list (remove an entry, pause or resume offers): only its CSRF token."""
