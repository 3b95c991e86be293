"""Errors the domain raises; each carries a message fit to show the buyer or producer."""


class DomainError(Exception):
    """A rule of the shop said no."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
