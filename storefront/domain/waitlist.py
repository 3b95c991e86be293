"""Waitlists: double opt-in, freed numbers offered to the next in line, early access to the next batch.

The rules, first come first served:

- Joining creates a *pending* entry and asks for a confirmation mail; only *confirmed* entries count, in order of
  confirmation (`confirmed_at`, then id). Joining again gives the caller the same answer whatever the entry's
  state, apart from whether a mail is due, so a page never tells whether an address is on a list.
- Once a release has sold out (`Release.sold_out_at`), every unit that comes free goes through `units_freed`: a hold
  that ends (expired, cancelled, failed payment, an offer declined or lapsed), a refunded unit returned to sale, a
  number the maker stops keeping back. While the release has confirmed waiters who have not had an offer, and
  offers are not paused, the unit is not put on public sale: `offer_free_units` moves it into a hold owned by an
  offer (`Hold.for_offer`) for the next waiter. It all happens in the transaction that freed the unit, so no public
  claim ever sees the unit free.
- One offer per waiter per release (a unique constraint): declining or letting it lapse passes the turn on for good.
  A waiter who already has the per-customer limit is passed over (a *skipped* offer, no unit).
- The offer's time starts when its mail is queued (`start_offer_clock`, in the worker): until then its hold keeps a
  provisional, generous expiry. When it runs out, the sweeper ends the hold like any other (`checkout.flows.end_hold`),
  which frees the unit, which offers it to the next waiter.
- Claiming an offer turns its hold into an ordinary payment hold for `hold_for`, after checking the per-customer
  limit under the buyer's lock; paying converts it (`offer_hold_converted`).

Offer engine locking (PostgreSQL): one advisory lock per release serialises offer-making, so two transactions never
pick the same waiter. Every transaction that frees a unit or confirms a waiter takes it before deciding anything
(whether the release is sold out, whether anyone waits), so of two that overlap, the second sees what the first
committed and makes the offer. The release's row is locked (FOR KEY SHARE) before it, the order every path takes.
The waiter is locked FOR KEY SHARE, so an unsubscribe under way passes them over; a unit is taken FOR UPDATE, which
waits only for a public claim of it under way (a unit being freed still looks held). The engine takes no buyer
locks, so it cannot deadlock with a claim that holds one; the limit is checked again, under the buyer's lock, when
the offer is claimed. The sweeper leases only a hold whose time has passed, and a claim refuses an offer whose
hold a sweeper has leased, so an offer claimed in time never lapses under its waiter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, scoped_session

from storefront import wakeups
from storefront.database import require_write_transaction
from storefront.domain import inventory
from storefront.domain.accounts import email_key
from storefront.domain.activity import Actor, record_activity
from storefront.domain.buyers import InvalidBuyerEmail
from storefront.domain.errors import DomainError
from storefront.models import (
    Hold,
    HoldStatus,
    OfferStatus,
    Product,
    Release,
    Subscriber,
    SubscriberStatus,
    Unit,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)
from storefront.models.waitlist import LIVE_OFFER_STATUSES
from storefront.unit_of_work import after_commit

# An offer's hold keeps its unit this long until the offer mail is queued and its real time starts: long enough
# that a worker restart never lets an offer lapse unmailed.
PROVISIONAL_OFFER_TIME = timedelta(hours=24)
# Second key of the per-release advisory lock that serialises offer-making (the first is the release id).
WAITLIST_LOCK_KEY = 0x57A17
# How many unmailed offers one worker run starts at most.
NOTIFY_BATCH = 200

# What the end of an offer's hold says about the offer.
END_REASON_TO_OFFER_STATUS = {
    "declined": OfferStatus.DECLINED,
    "cancelled": OfferStatus.DECLINED,
    "withdrawn": OfferStatus.WITHDRAWN,
}


class WaitlistError(DomainError):
    """A waitlist request could not be done as asked."""


class InvalidWaitlistEmail(WaitlistError):
    """The address cannot be put on a list: not an address, or one that could pass for another."""


class UnknownList(WaitlistError):
    """There is no such release or product to wait for."""


class NotWaitable(WaitlistError):
    """The release cannot be waited for: it has closed."""


class UnknownEntry(WaitlistError):
    """The link names an entry the shop no longer has."""


class EntryEnded(WaitlistError):
    """The entry was unsubscribed or removed since the link was sent: join again to wait again."""


class OfferUnavailable(WaitlistError):
    """The offer cannot be claimed: it was declined, lapsed, withdrawn, or already claimed."""


class EarlyAccessUnavailable(WaitlistError):
    """An early-access link used outside its window, for a release without one, or by an entry that has ended."""


@dataclass(frozen=True)
class Join:
    """What joining did: the entry, and whether the caller must queue a confirmation mail now."""

    entry: WaitlistEntry
    send_confirmation: bool


# --- Joining, confirming, leaving ----------------------------------------------------------------------------------


def waitlist_email_key(email: str) -> str:
    """The key one mailbox waits under, however it is typed (the accounts' rule: "+tags" count apart)."""
    try:
        return email_key(email)
    except InvalidBuyerEmail as error:
        raise InvalidWaitlistEmail(error.message) from error


def join_waitlist(
    session: Session | scoped_session,
    *,
    product_id: int,
    release_id: int | None,
    email: str,
    buyer_key: str,
    name: str,
    now: datetime,
    resend_after: timedelta,
) -> Join:
    """Put an address on a release's or a product's list (or again); say whether a confirmation mail is due."""
    require_write_transaction(session)
    typed = email.strip()
    key = waitlist_email_key(typed)
    check_list(session, product_id, release_id, now)
    entry = find_entry(session, product_id, release_id, key)
    if entry is None:
        entry = add_pending_entry(session, product_id, release_id, typed, key, buyer_key, name, now)
        if entry is not None:
            return Join(entry, send_confirmation=True)
        # Another request put the same address on this list a moment ago: treat this one as a repeat of it.
        entry = find_entry(session, product_id, release_id, key)

    if entry.status == WaitlistStatus.CONFIRMED:
        return Join(entry, send_confirmation=False)
    rejoining = entry.status in (WaitlistStatus.UNSUBSCRIBED, WaitlistStatus.REMOVED)
    if rejoining:
        # Asking again is a new request: it waits for a new confirmation, and joins the back of the line. Its mail
        # goes at once (only the mailbox's owner can have left, through the link mailed to it; the rate limits
        # still count every join).
        entry.status = WaitlistStatus.PENDING
        entry.confirmed_at = None
        entry.ended_at = None
    due = rejoining or entry.confirmation_sent_at is None or now - entry.confirmation_sent_at >= resend_after
    if due:
        entry.email = typed  # mail goes where they asked this time
        entry.buyer_key = buyer_key
        entry.name = name[:100]
        entry.confirmation_sent_at = now
    session.flush()
    return Join(entry, send_confirmation=due)


def check_list(session: Session | scoped_session, product_id: int, release_id: int | None, now: datetime) -> None:
    product = session.get(Product, product_id)
    if product is None:
        raise UnknownList("There is no such product.")
    if release_id is None:
        return
    release = session.get(Release, release_id)
    if release is None or release.batch.product_id != product_id:
        raise UnknownList("There is no such release.")
    if release.off_sale_at is not None and now >= release.off_sale_at:
        raise NotWaitable("This release has closed; join the list for the next batch instead.")


def find_entry(
    session: Session | scoped_session, product_id: int, release_id: int | None, key: str
) -> WaitlistEntry | None:
    query = select(WaitlistEntry).where(WaitlistEntry.product_id == product_id, WaitlistEntry.email_key == key)
    if release_id is None:
        query = query.where(WaitlistEntry.release_id.is_(None))
    else:
        query = query.where(WaitlistEntry.release_id == release_id)
    return session.scalar(query.with_for_update().execution_options(populate_existing=True))


def add_pending_entry(
    session: Session | scoped_session,
    product_id: int,
    release_id: int | None,
    typed: str,
    key: str,
    buyer_key: str,
    name: str,
    now: datetime,
) -> WaitlistEntry | None:
    """Insert a new pending entry; None when a concurrent join inserted the same one first."""
    entry = WaitlistEntry(
        product_id=product_id,
        release_id=release_id,
        email=typed,
        email_key=key,
        buyer_key=buyer_key,
        name=name[:100],
        status=WaitlistStatus.PENDING,
        created_at=now,
        confirmation_sent_at=now,
    )
    try:
        # A savepoint: the unique constraints settle two joins racing (PostgreSQL) without losing the transaction.
        with session.begin_nested():
            session.add(entry)
            session.flush()
    except IntegrityError:
        return None
    return entry


def get_entry(session: Session | scoped_session, entry_id: int) -> WaitlistEntry:
    entry = session.get(WaitlistEntry, entry_id, with_for_update=True, populate_existing=True)
    if entry is None:
        raise UnknownEntry("This link is for a waitlist entry the shop no longer has.")
    return entry


def confirm_entry(session: Session | scoped_session, entry_id: int, now: datetime) -> WaitlistEntry:
    """Confirm a pending entry from its link (confirming twice is harmless); an ended one is refused.

    A waiter confirmed while the release has freed numbers on public sale gets one offered at once.
    """
    require_write_transaction(session)
    entry = get_entry(session, entry_id)
    if entry.status in (WaitlistStatus.UNSUBSCRIBED, WaitlistStatus.REMOVED):
        raise EntryEnded("This address has left the list since that link was sent. Join again to wait again.")
    if entry.status == WaitlistStatus.PENDING:
        entry.status = WaitlistStatus.CONFIRMED
        entry.confirmed_at = now
        session.flush()
        if entry.release_id is not None:
            offer_free_units(session, entry.release_id, now)
    return entry


def unsubscribe_address(session: Session | scoped_session, entry_id: int, now: datetime) -> list[int]:
    """Take the entry's address off every list (never mailed by a waitlist again); returns the live offers' holds.

    The caller ends those holds through the one flow every hold ending takes (`checkout.flows.end_hold` with the
    reason "withdrawn"), which passes their units on. Unsubscribing twice is harmless.
    """
    require_write_transaction(session)
    entry = get_entry(session, entry_id)
    entries = session.scalars(
        select(WaitlistEntry).where(WaitlistEntry.email_key == entry.email_key).with_for_update()
    ).all()
    for each in entries:
        if each.status != WaitlistStatus.UNSUBSCRIBED:
            each.status = WaitlistStatus.UNSUBSCRIBED
            each.ended_at = now
    session.flush()
    return live_offer_holds(session, [each.id for each in entries])


def remove_entry(session: Session | scoped_session, entry_id: int, now: datetime, actor: Actor) -> list[int]:
    """The producer takes an entry off its list; returns its live offer's hold for the caller to end."""
    require_write_transaction(session)
    entry = get_entry(session, entry_id)
    if entry.status == WaitlistStatus.REMOVED:
        return []
    entry.status = WaitlistStatus.REMOVED
    entry.ended_at = now
    record_activity(
        session, actor, "waitlist.removed", "waitlist_entry", entry.id, f"Removed {entry.email} from a waitlist", now
    )
    session.flush()
    return live_offer_holds(session, [entry.id])


def live_offer_holds(session: Session | scoped_session, entry_ids: Sequence[int]) -> list[int]:
    """Holds of offers still waiting for an answer (not those whose waiter is already paying)."""
    if not entry_ids:
        return []
    return list(
        session.scalars(
            select(WaitlistOffer.hold_id).where(
                WaitlistOffer.entry_id.in_(entry_ids), WaitlistOffer.status == OfferStatus.LIVE
            )
        )
    )


def position_in_line(session: Session | scoped_session, entry: WaitlistEntry) -> int | None:
    """1 for the next waiter to get an offer; None when the entry is not waiting (unconfirmed, served, ended)."""
    if entry.status != WaitlistStatus.CONFIRMED or entry.release_id is None or entry.confirmed_at is None:
        return None
    if has_offer(session, entry.release_id, entry.id):
        return None
    ahead = session.scalar(
        select(func.count())
        .select_from(WaitlistEntry)
        .where(
            waiting_for(entry.release_id),
            or_(
                WaitlistEntry.confirmed_at < entry.confirmed_at,
                and_(WaitlistEntry.confirmed_at == entry.confirmed_at, WaitlistEntry.id < entry.id),
            ),
        )
    )
    return int(ahead) + 1


@dataclass(frozen=True)
class WaiterStatus:
    """What the release page tells a waiter who came from their mail's link: their place, or their offer."""

    entry: WaitlistEntry
    position: int | None
    offer: WaitlistOffer | None


def waiter_status(session: Session | scoped_session, release_id: int, token: str | None) -> WaiterStatus | None:
    """The status of the entry whose position link (`WaitlistEntry.token`) this is, if it is on this release's list."""
    if not token or len(token) > 64:
        return None
    entry = session.scalar(
        select(WaitlistEntry).where(WaitlistEntry.token == token, WaitlistEntry.release_id == release_id)
    )
    if entry is None:
        return None
    offer = session.scalar(
        select(WaitlistOffer).where(WaitlistOffer.release_id == release_id, WaitlistOffer.entry_id == entry.id)
    )
    return WaiterStatus(entry, position_in_line(session, entry), offer)


def has_offer(session: Session | scoped_session, release_id: int, entry_id: int) -> bool:
    return (
        session.scalar(
            select(WaitlistOffer.id).where(WaitlistOffer.release_id == release_id, WaitlistOffer.entry_id == entry_id)
        )
        is not None
    )


def waiting_for(release_id: int):
    """SQL condition: a confirmed entry of this release's list that has not had its offer yet."""
    return and_(
        WaitlistEntry.release_id == release_id,
        WaitlistEntry.status == WaitlistStatus.CONFIRMED,
        ~exists().where(WaitlistOffer.release_id == release_id, WaitlistOffer.entry_id == WaitlistEntry.id),
    )


# --- The offer engine ----------------------------------------------------------------------------------------------


def units_freed(session: Session | scoped_session, release_id: int, count: int, now: datetime) -> list[WaitlistOffer]:
    """`count` units of a release just became available in this transaction: offer them to its waitlist first.

    The one place every freed unit passes (storefront.domain.inventory, refunds, releases call it).
    """
    if count <= 0:
        return []
    release = session.get(Release, release_id)
    if not is_on_sale(release, now):
        return []
    if release.sold_out_at is None:
        available = session.scalar(
            select(func.count()).select_from(
                select(Unit.id)
                .where(Unit.release_id == release_id, inventory.UNIT_IS_AVAILABLE)
                .limit(count + 1)
                .subquery()
            )
        )
        if available > count:
            return []  # the release was not sold out: the numbers simply go back on sale
        session.execute(
            update(Release)
            .where(Release.id == release_id, Release.sold_out_at.is_(None))
            .values(sold_out_at=now, updated_at=Release.updated_at),
            execution_options={"synchronize_session": False},
        )
        session.refresh(release, ["sold_out_at"])
    return offer_free_units(session, release_id, now)


def is_on_sale(release: Release | None, now: datetime) -> bool:
    if release is None or now < release.on_sale_at:
        return False
    return release.off_sale_at is None or now < release.off_sale_at


def offers_open(release: Release | None, now: datetime) -> bool:
    """Whether freed numbers of this release go to its waitlist now."""
    return is_on_sale(release, now) and release.sold_out_at is not None and release.waitlist_paused_at is None


def offer_free_units(session: Session | scoped_session, release_id: int, now: datetime) -> list[WaitlistOffer]:
    """Offer the release's available units to its next waiters, one unit each, lowest number to longest waiting.

    A no-op unless the release has sold out, offers are not paused and somebody is waiting. Returns the offers made.
    """
    require_write_transaction(session)
    # Lock first, then decide. Deciding "nobody waits" or "not sold out" before taking the lock let a unit freed
    # here go on public sale while a waiter confirmed in a transaction that overlapped this one (and found no unit,
    # this one's not being committed yet).
    lock_waitlist(session, release_id)
    release = session.get(Release, release_id, populate_existing=True)  # as whoever held the lock before left it
    if not offers_open(release, now):
        return []
    made: list[WaitlistOffer] = []
    while True:
        # Each statement reads afresh, so it sees the offers of whoever held the lock before this transaction.
        # The waiter's row is locked so that an unsubscribe under way is waited for, and its waiter passed over.
        waiter = session.scalar(
            select(WaitlistEntry)
            .where(waiting_for(release_id))
            .order_by(WaitlistEntry.confirmed_at, WaitlistEntry.id)
            .limit(1)
            .with_for_update(read=True, key_share=True)
        )
        if waiter is None:
            break
        # A unit another transaction has locked while it is on sale is a public claim under way: wait for it, as
        # it may yet roll back (skipping it would leave it on public sale with this waiter waiting). Units being
        # freed are still held as far as this statement can see, so it never waits on a transaction that frees.
        unit = session.execute(
            select(Unit.id, Unit.number)
            .where(Unit.release_id == release_id, inventory.UNIT_IS_AVAILABLE)
            .order_by(Unit.number)
            .limit(1)
            .with_for_update()
        ).first()
        if unit is None:
            break
        if inventory.units_owned(session, release_id, waiter.buyer_key, now) >= release.per_customer_limit:
            session.add(
                WaitlistOffer(
                    release_id=release_id,
                    entry_id=waiter.id,
                    status=OfferStatus.SKIPPED,
                    created_at=now,
                    ended_at=now,
                    note=f"already has the limit of {release.per_customer_limit}",
                )
            )
            session.flush()
            continue
        made.append(make_offer(session, release, waiter, unit.id, unit.number, now))
    if made:
        after_commit(session, "wake-offer-mailer", wakeups.offers_made.send)
    return made


def lock_waitlist(session: Session | scoped_session, release_id: int) -> None:
    """Serialise offer-making for one release until the transaction ends (PostgreSQL; SQLite already is).

    The release's row is locked FOR KEY SHARE first, as a claim locks it: every path takes the release's row before
    this lock (a producer resuming offers or returning numbers holds it FOR UPDATE, then offers), so nobody holding
    this lock waits for the row (an offer's hold references it) while the row's holder waits for this lock.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(Release.id).where(Release.id == release_id).with_for_update(read=True, key_share=True))
        session.execute(select(func.pg_advisory_xact_lock(release_id, WAITLIST_LOCK_KEY)))


def make_offer(
    session: Session | scoped_session, release: Release, waiter: WaitlistEntry, unit_id: int, number: int, now: datetime
) -> WaitlistOffer:
    """Hold one unit for one waiter and record the offer (its mail is queued by the worker)."""
    hold = Hold(
        release_id=release.id,
        buyer_email=waiter.email,
        buyer_key=waiter.buyer_key,
        quantity=1,
        status=HoldStatus.ACTIVE,
        created_at=now,
        expires_at=now + PROVISIONAL_OFFER_TIME,
        for_offer=True,
    )
    session.add(hold)
    session.flush()
    if not inventory.take_number(session, release.id, number, hold):
        # The unit's row is locked by this transaction since it was picked: nothing else can have taken it.
        raise RuntimeError(f"Unit {unit_id} of release {release.id} stopped being available under its lock")
    offer = WaitlistOffer(
        release_id=release.id,
        entry_id=waiter.id,
        unit_id=unit_id,
        number=number,
        hold_id=hold.id,
        status=OfferStatus.LIVE,
        created_at=now,
    )
    session.add(offer)
    session.flush()
    return offer


def end_offers_of_hold(session: Session | scoped_session, hold: Hold, now: datetime) -> None:
    """The hold of an offer ended: record how (declined, withdrawn, lapsed) on the offer."""
    if not hold.for_offer:
        return
    status = END_REASON_TO_OFFER_STATUS.get(hold.end_reason or "", OfferStatus.LAPSED)
    session.execute(
        update(WaitlistOffer)
        .where(WaitlistOffer.hold_id == hold.id, WaitlistOffer.status.in_(LIVE_OFFER_STATUSES))
        .values(status=status, ended_at=now),
        execution_options={"synchronize_session": False},
    )


def offer_hold_converted(session: Session | scoped_session, hold: Hold, now: datetime) -> None:
    """The hold of an offer was paid for: the offer ends purchased."""
    if not hold.for_offer:
        return
    session.execute(
        update(WaitlistOffer)
        .where(WaitlistOffer.hold_id == hold.id, WaitlistOffer.status.in_(LIVE_OFFER_STATUSES))
        .values(status=OfferStatus.PURCHASED, ended_at=now),
        execution_options={"synchronize_session": False},
    )


def set_offers_paused(
    session: Session | scoped_session, release_id: int, paused: bool, now: datetime, actor: Actor
) -> Release:
    """Pause offers for a release (freed numbers go on public sale), or resume them (public ones are offered)."""
    require_write_transaction(session)
    release = session.get(Release, release_id, with_for_update=True, populate_existing=True)
    if release is None:
        raise UnknownList("There is no such release.")
    if paused and release.waitlist_paused_at is None:
        release.waitlist_paused_at = now
        record_activity(
            session,
            actor,
            "waitlist.paused",
            "release",
            release.id,
            f"Paused waitlist offers of “{release.title}”",
            now,
        )
    elif not paused and release.waitlist_paused_at is not None:
        release.waitlist_paused_at = None
        record_activity(
            session,
            actor,
            "waitlist.resumed",
            "release",
            release.id,
            f"Resumed waitlist offers of “{release.title}”",
            now,
        )
        session.flush()
        offer_free_units(session, release.id, now)
    session.flush()
    return release


# --- An offer's life -----------------------------------------------------------------------------------------------


def unnotified_offer_ids(session: Session | scoped_session, limit: int = NOTIFY_BATCH) -> list[int]:
    return list(
        session.scalars(
            select(WaitlistOffer.id)
            .where(WaitlistOffer.notified_at.is_(None), WaitlistOffer.status == OfferStatus.LIVE)
            .order_by(WaitlistOffer.created_at, WaitlistOffer.id)
            .limit(limit)
        )
    )


def start_offer_clock(
    session: Session | scoped_session, offer_id: int, now: datetime, offer_for: timedelta
) -> WaitlistOffer | None:
    """Start an offer's time as its mail is queued; None if it was started already or has ended (mail nobody)."""
    require_write_transaction(session)
    offer = session.get(WaitlistOffer, offer_id)
    if offer is None or offer.hold_id is None:
        return None
    hold = inventory.lock_hold(session, offer.hold_id)  # a hold's row first, then its units: the inventory's lock order
    session.refresh(offer, with_for_update=True)
    if offer.status != OfferStatus.LIVE or offer.notified_at is not None or hold.status != HoldStatus.ACTIVE:
        return None
    offer.notified_at = now
    offer.expires_at = now + offer_for
    inventory.move_expiry(session, hold, offer.expires_at)
    return offer


def find_offer(session: Session | scoped_session, token: str) -> WaitlistOffer | None:
    return session.scalar(select(WaitlistOffer).where(WaitlistOffer.token == token))


def claim_offer(session: Session | scoped_session, offer_id: int, now: datetime, hold_for: timedelta) -> Hold:
    """The waiter takes their offer: its hold becomes a payment hold for `hold_for`. Claiming again returns it.

    Raises OfferUnavailable when the offer has ended or run out, LimitReached when the waiter has meanwhile got the
    per-customer limit some other way, NotOnSale or ReleasePaused when the release cannot be bought now.
    """
    require_write_transaction(session)
    offer = session.get(WaitlistOffer, offer_id)
    if offer is None or offer.hold_id is None:
        raise OfferUnavailable("This offer does not exist.")
    release = inventory.read_release_for_claim(session, offer.release_id)
    if release.off_sale_at is not None and now >= release.off_sale_at:
        raise inventory.NotOnSale("This release has closed.")
    if release.paused_at is not None:
        raise inventory.ReleasePaused(
            "The maker has paused sales of this release for a moment; your number stays held."
        )
    hold = inventory.lock_hold(session, offer.hold_id)
    inventory.lock_buyer(session, release.id, hold.buyer_key)
    session.refresh(offer, with_for_update=True)
    if offer.status == OfferStatus.CLAIMED and hold.status == HoldStatus.ACTIVE:
        return hold
    if offer.status != OfferStatus.LIVE or hold.status != HoldStatus.ACTIVE:
        raise OfferUnavailable(offer_ended_message(offer))
    # A sweeper leases only a hold whose time has passed, and then ends it: the offer ran out as far as it knows.
    leased = hold.sweep_lease_until is not None and hold.sweep_lease_until > now
    if now >= hold.expires_at or leased:
        raise OfferUnavailable("This offer ran out of time; the number has passed to the next person in line.")
    # This hold already counts among what the waiter owns.
    owned = inventory.units_owned(session, release.id, hold.buyer_key, now)
    if owned > release.per_customer_limit:
        raise inventory.LimitReached(
            f"You already have the limit of {release.per_customer_limit} from this release.", remaining=0
        )
    offer.status = OfferStatus.CLAIMED
    inventory.move_expiry(session, hold, now + hold_for)
    return hold


def unclaim_offer(session: Session | scoped_session, hold_id: int, now: datetime) -> bool:
    """The payment page of a claimed offer could not be opened: the offer is the waiter's again for the rest of its
    time (to claim again, or to pass on). Returns False when the hold is not a claimed offer's (end it as usual)."""
    require_write_transaction(session)
    hold = inventory.lock_hold(session, hold_id)
    if not hold.for_offer or hold.status != HoldStatus.ACTIVE or hold.payment_session_id is not None:
        return False
    offer = session.scalar(select(WaitlistOffer).where(WaitlistOffer.hold_id == hold_id).with_for_update())
    if offer is None or offer.status != OfferStatus.CLAIMED or offer.expires_at is None:
        return False
    offer.status = OfferStatus.LIVE
    # Back to the offer's own time (the sweeper passes it on once that is up, if it already is).
    inventory.move_expiry(session, hold, offer.expires_at)
    return True


def offer_ended_message(offer: WaitlistOffer) -> str:
    match offer.status:
        case OfferStatus.PURCHASED:
            return "You have bought this number already; your confirmation mail has the order."
        case OfferStatus.DECLINED:
            return "This offer was declined; the number has passed to the next person in line."
        case OfferStatus.WITHDRAWN:
            return "This offer was withdrawn when the address left the waitlist."
        case OfferStatus.CLAIMED:
            return "This offer was claimed and its payment page has closed."
        case _:
            return "This offer ran out of time; the number has passed to the next person in line."


# --- Early access --------------------------------------------------------------------------------------------------


def early_access_entry(
    session: Session | scoped_session, entry_id: int, release_id: int, now: datetime
) -> tuple[WaitlistEntry, Release]:
    """The entry an early-access link was issued to, if it may reserve from `release_id` now."""
    entry = session.get(WaitlistEntry, entry_id)
    release = session.get(Release, release_id)
    if entry is None or release is None or release.batch.product_id != entry.product_id:
        raise EarlyAccessUnavailable("This early-access link is not valid.")
    if entry.status != WaitlistStatus.CONFIRMED:
        raise EarlyAccessUnavailable("This address has left the waitlist, so its early-access link no longer works.")
    if release.early_access_at is None:
        raise EarlyAccessUnavailable("This release has no early access.")
    if now < release.early_access_at:
        raise EarlyAccessUnavailable("Early access has not started yet.")
    return entry, release


def early_access_recipients(session: Session | scoped_session, product_id: int) -> list[tuple[int, str, str]]:
    """One (entry id, email, email key) per confirmed address waiting for the product, oldest entry first."""
    rows = session.execute(
        select(WaitlistEntry.id, WaitlistEntry.email, WaitlistEntry.email_key)
        .where(WaitlistEntry.product_id == product_id, WaitlistEntry.status == WaitlistStatus.CONFIRMED)
        .order_by(WaitlistEntry.confirmed_at, WaitlistEntry.id)
    ).all()
    seen: set[str] = set()
    recipients = []
    for entry_id, email, key in rows:
        if key not in seen:
            seen.add(key)
            recipients.append((entry_id, email, key))
    return recipients


def release_with_early_access_ahead(
    session: Session | scoped_session, product_id: int, now: datetime
) -> Release | None:
    """The product's next release whose early access has not ended, if one has been announced with it."""
    from storefront.models import Announcement, Batch

    return session.scalar(
        select(Release)
        .join(Batch, Release.batch_id == Batch.id)
        .join(Announcement, Announcement.release_id == Release.id)
        .where(Batch.product_id == product_id, Release.early_access_at.is_not(None), Release.on_sale_at > now)
        .order_by(Release.on_sale_at)
        .limit(1)
    )


# --- The producer's view -------------------------------------------------------------------------------------------

# Where an entry stands in its list's order: the confirmed in line, then those still to confirm, then those who left.
LINE_GROUP = {WaitlistStatus.CONFIRMED: 0, WaitlistStatus.PENDING: 1}


@dataclass(frozen=True)
class ListSummary:
    """One list as the producer's workspace shows it: who is on it, and how its offers went."""

    product: Product
    release: Release | None  # None: the product's own list, waiting for its next batches
    confirmed: int
    pending: int
    left: int  # unsubscribed, or removed by the producer
    offers_out: int  # live: a number held for the waiter, waiting for their answer
    offers_claimed: int  # the waiter went to pay (whether or not they finished)
    purchased: int
    offers_made: int  # numbers offered: waiters passed over for the per-customer limit aside

    @property
    def size(self) -> int:
        """Everyone on the list now, confirmed or still to confirm."""
        return self.confirmed + self.pending

    @property
    def conversion(self) -> float | None:
        """Orders per offer made; None before any offer."""
        return self.purchased / self.offers_made if self.offers_made else None


def summarise_lists(session: Session | scoped_session) -> list[ListSummary]:
    """Every list anyone joined, by product name: the product's own list first, then its releases' newest first."""
    summaries = list_summaries(session)
    summaries.sort(
        key=lambda s: (
            s.product.name.casefold(),
            s.product.id,
            s.release is not None,
            -s.release.on_sale_at.timestamp() if s.release else 0,
            s.release.id if s.release else 0,
        )
    )
    return summaries


def summarise_list(session: Session | scoped_session, product: Product, release: Release | None) -> ListSummary:
    """One list's numbers (all nought while nobody has joined it)."""
    if release is None:
        found = list_summaries(session, WaitlistEntry.product_id == product.id, WaitlistEntry.release_id.is_(None))
    else:
        found = list_summaries(session, WaitlistEntry.release_id == release.id)
    if found:
        return found[0]
    return ListSummary(product, release, 0, 0, 0, 0, 0, 0, 0)


def list_summaries(session: Session | scoped_session, *conditions) -> list[ListSummary]:
    """The summaries of the lists with entries matching `conditions`, in no particular order."""
    entry_rows = session.execute(
        select(
            WaitlistEntry.product_id,
            WaitlistEntry.release_id,
            func.sum(case((WaitlistEntry.status == WaitlistStatus.CONFIRMED, 1), else_=0)),
            func.sum(case((WaitlistEntry.status == WaitlistStatus.PENDING, 1), else_=0)),
            func.sum(
                case((WaitlistEntry.status.in_([WaitlistStatus.UNSUBSCRIBED, WaitlistStatus.REMOVED]), 1), else_=0)
            ),
        )
        .where(*conditions)
        .group_by(WaitlistEntry.product_id, WaitlistEntry.release_id)
    ).all()
    if not entry_rows:
        return []
    release_ids = [release_id for _, release_id, *_ in entry_rows if release_id is not None]
    product_ids = {product_id for product_id, *_ in entry_rows}
    offers: dict[int, dict[str, int]] = {}
    if release_ids:
        offer_rows = session.execute(
            select(WaitlistOffer.release_id, WaitlistOffer.status, func.count())
            .where(WaitlistOffer.release_id.in_(release_ids))
            .group_by(WaitlistOffer.release_id, WaitlistOffer.status)
        ).all()
        for release_id, status, count in offer_rows:
            offers.setdefault(release_id, {})[status] = count
    products = {p.id: p for p in session.scalars(select(Product).where(Product.id.in_(product_ids)))}
    releases = {r.id: r for r in session.scalars(select(Release).where(Release.id.in_(release_ids)))}
    summaries = []
    for product_id, release_id, confirmed, pending, left in entry_rows:
        # Offers are a release's: a product's own list never has any.
        counts = offers.get(release_id, {}) if release_id is not None else {}
        summaries.append(
            ListSummary(
                product=products[product_id],
                release=releases.get(release_id),
                confirmed=int(confirmed or 0),
                pending=int(pending or 0),
                left=int(left or 0),
                offers_out=counts.get(OfferStatus.LIVE, 0),
                offers_claimed=counts.get(OfferStatus.CLAIMED, 0) + counts.get(OfferStatus.PURCHASED, 0),
                purchased=counts.get(OfferStatus.PURCHASED, 0),
                offers_made=sum(n for status, n in counts.items() if status != OfferStatus.SKIPPED),
            )
        )
    return summaries


@dataclass(frozen=True)
class EntryRow:
    """One entry of a list, with its place in line and its offer, as the workspace and the CSV show it."""

    entry: WaitlistEntry
    # A release list: the place among those still waiting for an offer; a product list: among the confirmed.
    position: int | None
    offer: WaitlistOffer | None


def list_entries(
    session: Session | scoped_session, *, release_id: int | None = None, product_id: int | None = None
) -> list[EntryRow]:
    """A list's entries in line order: the confirmed by confirmation (the waiting ones numbered as
    `position_in_line` numbers them), then those still to confirm by when they joined, then those who left."""
    query = select(WaitlistEntry)
    if release_id is not None:
        query = query.where(WaitlistEntry.release_id == release_id)
    else:
        query = query.where(WaitlistEntry.product_id == product_id, WaitlistEntry.release_id.is_(None))
    # Unconfirmed last on both databases (SQLite sorts NULL first, PostgreSQL last), then by when they joined.
    entries = session.scalars(
        query.order_by(WaitlistEntry.confirmed_at.is_(None), WaitlistEntry.confirmed_at, WaitlistEntry.id)
    ).all()
    offers = {}
    if release_id is not None:
        offers = {
            offer.entry_id: offer
            for offer in session.scalars(select(WaitlistOffer).where(WaitlistOffer.release_id == release_id))
        }
    rows = []
    position = 0
    for entry in entries:
        offer = offers.get(entry.id)
        place = None
        if entry.status == WaitlistStatus.CONFIRMED and offer is None:
            position += 1
            place = position
        rows.append(EntryRow(entry, place, offer))
    rows.sort(key=lambda row: LINE_GROUP.get(row.entry.status, 2))  # stable: each group keeps its order
    return rows


def count_waiters_not_subscribed(session: Session | scoped_session, product_id: int) -> int:
    """Addresses waiting for the product (confirmed, on any of its lists) that are not confirmed subscribers: what
    they add to an announcement's recipients (each address gets one mail)."""
    subscribed = exists().where(
        Subscriber.email_key == WaitlistEntry.email_key, Subscriber.status == SubscriberStatus.CONFIRMED
    )
    count = session.scalar(
        select(func.count(func.distinct(WaitlistEntry.email_key))).where(
            WaitlistEntry.product_id == product_id, WaitlistEntry.status == WaitlistStatus.CONFIRMED, ~subscribed
        )
    )
    return int(count or 0)
