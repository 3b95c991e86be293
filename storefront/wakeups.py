"""Signals sent after a commit, so the worker starts on new work at once instead of at its next periodic run.

The domain and the checkout flows send them through `unit_of_work.after_commit`; `storefront.tasks` listens.
Nothing that sends them imports the task queue, so there is no import loop, and a rolled-back change wakes nobody.
"""

from blinker import Namespace

signals = Namespace()

# Mail was queued in the outbox.
mail_queued = signals.signal("mail-queued")
# A refund was recorded; the sender is its id.
refund_queued = signals.signal("refund-queued")
# Waitlist offers were made; their mails (and the start of their time) are due.
offers_made = signals.signal("offers-made")
