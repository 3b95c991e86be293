"""Who may open which page: the producer's workspace needs a signed-in producer."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, redirect, request, url_for
from flask_login import current_user


def requested_path() -> str:
    """The path and query of this request, to come back to after signing in."""
    return request.full_path if request.query_string else request.path


def refuse_unless_producer():
    """Send an anonymous visitor to sign in (and back here after); answer 403 to a signed-in non-producer.

    Returns a response to stop the request, or None to let it through (usable as a `before_request` hook).
    """
    if not current_user.is_authenticated:
        return redirect(url_for("account.login", next=requested_path()))
    if not getattr(current_user, "is_producer", False):
        abort(403, description="This page is for the shop's producers. You are signed in with another account.")
    return None


def producer_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Let only signed-in producers reach `view`."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        refusal = refuse_unless_producer()
        if refusal is not None:
            return refusal
        return view(*args, **kwargs)

    return guarded
