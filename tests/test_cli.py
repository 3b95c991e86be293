"""`flask storefront seed-demo` loads a realistic producer once, however often it runs."""

from sqlalchemy import func, select

from storefront.domain.stock import describe_releases
from storefront.models import Batch, BatchImage, Release, ReleaseStatus, Unit


def test_seed_demo_is_idempotent_and_covers_every_state(app, session, clock, tmp_path):
    runner = app.test_cli_runner()

    first = runner.invoke(args=["storefront", "seed-demo"])
    assert first.exit_code == 0, first.output
    assert "Demo data loaded" in first.output
    counts = {model: session.scalar(select(func.count()).select_from(model)) for model in (Batch, Release, Unit)}

    second = runner.invoke(args=["storefront", "seed-demo"])
    assert second.exit_code == 0, second.output
    assert "nothing to do" in second.output
    assert {
        model: session.scalar(select(func.count()).select_from(model)) for model in (Batch, Release, Unit)
    } == counts

    batches = session.scalars(select(Batch)).all()
    assert len(batches) >= 3
    assert all(batch.story_markdown and batch.facts and batch.images for batch in batches)
    for image in session.scalars(select(BatchImage)):
        assert (tmp_path / "uploads" / image.path).is_file()
    statuses = {view.status for view in describe_releases(session, session.scalars(select(Release)), clock())}
    assert {ReleaseStatus.ON_SALE, ReleaseStatus.UPCOMING, ReleaseStatus.SOLD_OUT} <= statuses


def test_seed_demo_makes_a_producer_who_can_sign_in_and_subscribers_to_announce_to(app, session, client):
    from storefront.demo import DEMO_PRODUCER_EMAIL, DEMO_PRODUCER_PASSWORD, DEMO_SUBSCRIBERS
    from storefront.models import Subscriber, SubscriberStatus, User
    from tests.web.producer.conftest import csrf_token

    result = app.test_cli_runner().invoke(args=["storefront", "seed-demo"])
    assert result.exit_code == 0, result.output
    assert f"{DEMO_PRODUCER_EMAIL} with password {DEMO_PRODUCER_PASSWORD}" in result.output
    assert session.scalar(select(User.role).where(User.email == DEMO_PRODUCER_EMAIL)) == "producer"
    confirmed = session.scalars(select(Subscriber.email).where(Subscriber.status == SubscriberStatus.CONFIRMED))
    assert sorted(confirmed) == sorted(DEMO_SUBSCRIBERS)

    signed_in = client.post(
        "/login",
        data={"csrf_token": csrf_token(client), "email": DEMO_PRODUCER_EMAIL, "password": DEMO_PRODUCER_PASSWORD},
    )
    assert signed_in.status_code == 303 and signed_in.headers["Location"] == "/producer/"
    dashboard = client.get("/producer/").get_data(as_text=True)
    assert "Carlow Rye, Batch 7" in dashboard


def test_seed_demo_creates_no_known_password_in_production(app, session):
    from storefront.models import Subscriber, User

    app.config["ENV_NAME"] = "production"
    result = app.test_cli_runner().invoke(args=["storefront", "seed-demo"])
    assert result.exit_code == 0, result.output
    assert "No demo producer account" in result.output and "create-producer" in result.output
    assert "password" not in result.output.replace("create-producer", "")
    assert session.scalar(select(func.count()).select_from(User)) == 0
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_the_demo_sold_out_run_offers_a_number_the_maker_puts_back_to_its_waitlist(app, session, clock):
    from datetime import timedelta

    from storefront.domain import waitlist
    from storefront.domain.activity import SHOP
    from storefront.domain.releases import return_withheld_numbers
    from storefront.models import WaitlistOffer
    from storefront.unit_of_work import write_transaction

    assert app.test_cli_runner().invoke(args=["storefront", "seed-demo"]).exit_code == 0
    release = session.scalar(select(Release).where(Release.slug == "quarter-cask-31"))
    assert release.sold_out_at is not None
    with write_transaction(session):
        joined = waitlist.join_waitlist(
            session,
            product_id=release.batch.product_id,
            release_id=release.id,
            email="visitor@example.com",
            buyer_key="visitor@example.com",
            name="",
            now=clock(),
            resend_after=timedelta(minutes=15),
        )
        entry_id = joined.entry.id
    with write_transaction(session):
        waitlist.confirm_entry(session, entry_id, clock())

    with write_transaction(session):
        return_withheld_numbers(session, release.id, [60], clock(), SHOP)

    offer = session.scalar(select(WaitlistOffer).where(WaitlistOffer.release_id == release.id))
    assert (offer.number, offer.entry_id, offer.status) == (60, entry_id, "live")
    assert offer.notified_at is not None  # the worker mailed it as the change committed
