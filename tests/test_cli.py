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
