"""Products, batches, their stories and photos: the producer's catalogue.

Each action validates its form, calls one function of storefront.domain.catalog inside a write transaction, then
redirects (303); refused input re-renders the form with the message next to its field (422).

Photos: the upload is checked and re-encoded in memory by storefront.photos before the transaction begins; inside
it the row is added and the files are written, so a photo is only ever recorded with its files in place. If the
transaction fails after the files were written, this request removes the files it created; only a crash between
writing and committing can leave unreferenced files behind (harmless, and never shown). Deleted photos' files are
removed after the deletion commits.
"""

from __future__ import annotations

import logging

from flask import (
    abort,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import RequestEntityTooLarge

from storefront import FRIENDLY_DESCRIPTIONS, clock, photos
from storefront.domain import catalog
from storefront.domain.activity import Actor
from storefront.domain.catalog import CatalogError, NotFound
from storefront.extensions import db
from storefront.models import Batch, BatchImage, Product
from storefront.producer import bp
from storefront.producer.catalog_forms import (
    BatchForm,
    PhotoActionForm,
    PhotoEditForm,
    PhotoMoveForm,
    PhotoUploadForm,
    ProductForm,
    StoryPreviewForm,
)
from storefront.text import render_markdown
from storefront.unit_of_work import after_commit, end_read, write_transaction

log = logging.getLogger(__name__)

INVALID = 422


def acting_producer() -> Actor:
    return Actor.of(current_user._get_current_object())


def show_refusal(form, refusal: CatalogError) -> list[str]:
    """Put a domain refusal next to its field; return it as a form-wide problem when it has no single field."""
    if refusal.field == "facts" and hasattr(form, "fact_problems"):
        form.fact_problems.append(refusal.message)
        return []
    field = getattr(form, refusal.field, None) if refusal.field else None
    if field is not None:
        field.errors = [*field.errors, refusal.message]
        return []
    return [refusal.message]


def product_or_404(product_id: int) -> Product:
    return db.session.get(Product, product_id) or abort(404, description="There is no such product.")


def batch_or_404(batch_id: int) -> Batch:
    batch = db.session.scalar(
        select(Batch)
        .where(Batch.id == batch_id)
        .options(selectinload(Batch.product), selectinload(Batch.facts), selectinload(Batch.images))
    )
    return batch or abort(404, description="There is no such batch.")


def photo_or_404(batch: Batch, photo_id: int) -> BatchImage:
    for image in batch.images:
        if image.id == photo_id:
            return image
    abort(404, description="This batch has no such photo.")


# --- Products -----------------------------------------------------------------------------------------------------


@bp.get("/products")
def list_products():
    """Every product with its batches."""
    products = db.session.scalars(
        select(Product)
        .options(selectinload(Product.batches).selectinload(Batch.images))
        .order_by(Product.name, Product.id)
    ).all()
    return render_template("producer/list_products.html", products=products)


@bp.route("/products/new", methods=["GET", "POST"])
def new_product():
    """The form for a new product."""
    form = ProductForm()
    problems: list[str] = []
    if form.validate_on_submit():
        try:
            with write_transaction(db.session):
                product = catalog.create_product(db.session, acting_producer(), form.details(), clock.now())
        except CatalogError as refusal:
            problems = show_refusal(form, refusal)
        else:
            flash(f"Product “{product.name}” created. Add its first batch when you are ready.", "success")
            return redirect(url_for("producer.list_products", _anchor=f"product-{product.id}"), code=303)
    status = INVALID if request.method == "POST" else 200
    return render_template("producer/new_product.html", form=form, problems=problems), status


@bp.route("/products/<int:product_id>/edit", methods=["GET", "POST"])
def edit_product(product_id: int):
    """The form to change a product."""
    product = product_or_404(product_id)
    form = ProductForm(obj=product)
    problems: list[str] = []
    if form.validate_on_submit():
        try:
            with write_transaction(db.session):
                product = catalog.edit_product(db.session, acting_producer(), product_id, form.details(), clock.now())
        except NotFound:
            abort(404)
        except CatalogError as refusal:
            problems = show_refusal(form, refusal)
        else:
            flash(f"Product “{product.name}” saved.", "success")
            return redirect(url_for("producer.list_products", _anchor=f"product-{product.id}"), code=303)
    status = INVALID if request.method == "POST" else 200
    return render_template("producer/edit_product.html", form=form, product=product, problems=problems), status


# --- Batches ------------------------------------------------------------------------------------------------------


def story_preview(form: BatchForm) -> Markup:
    return render_markdown(form.story_markdown.data)


@bp.route("/products/<int:product_id>/batches/new", methods=["GET", "POST"])
def new_batch(product_id: int):
    """The form for a new batch of a product."""
    product = product_or_404(product_id)
    form = BatchForm()
    problems: list[str] = []
    status = 200
    if request.method == "POST" and form.preview.data:
        status = 200  # "Preview the story" without JavaScript: show it, save nothing
    elif form.validate_on_submit():
        try:
            with write_transaction(db.session):
                batch = catalog.create_batch(db.session, acting_producer(), product_id, form.details(), clock.now())
        except NotFound:
            abort(404)
        except CatalogError as refusal:
            problems = show_refusal(form, refusal)
            status = INVALID
        else:
            flash(f"Batch {batch.code} created. Add its photos below.", "success")
            return redirect(url_for("producer.edit_batch", batch_id=batch.id), code=303)
    elif request.method == "POST":
        status = INVALID
    form.offer_blank_rows()
    return render_template(
        "producer/new_batch.html",
        form=form,
        product=product,
        problems=problems,
        preview=story_preview(form),
        previewing=request.method == "POST" and form.preview.data,
    ), status


@bp.route("/batches/<int:batch_id>/edit", methods=["GET", "POST"])
def edit_batch(batch_id: int):
    """The batch: its details, provenance, story (with a live preview) and photos."""
    batch = batch_or_404(batch_id)
    form = BatchForm(obj=batch)
    problems: list[str] = []
    status = 200
    if request.method == "POST" and form.preview.data:
        status = 200
    elif form.validate_on_submit():
        try:
            with write_transaction(db.session):
                batch = catalog.edit_batch(db.session, acting_producer(), batch_id, form.details(), clock.now())
        except NotFound:
            abort(404)
        except CatalogError as refusal:
            problems = show_refusal(form, refusal)
            status = INVALID
        else:
            flash(f"Batch {batch.code} saved.", "success")
            return redirect(url_for("producer.edit_batch", batch_id=batch.id), code=303)
    elif request.method == "POST":
        status = INVALID
    if status != 200:
        batch = batch_or_404(batch_id)  # the refused change was rolled back: show the batch as it is
    form.offer_blank_rows()
    return render_template(
        "producer/edit_batch.html",
        form=form,
        batch=batch,
        problems=problems,
        preview=story_preview(form),
        previewing=request.method == "POST" and form.preview.data,
        upload_form=PhotoUploadForm(formdata=None),
        action_form=PhotoActionForm(formdata=None),
        max_photo_megabytes=photo_megabytes(),
    ), status


@bp.post("/preview-story")
def preview_story():
    """Render the story as typed so far, with the public page's sanitiser; answer the HTML fragment."""
    form = StoryPreviewForm()
    if not form.validate():
        messages = [message for errors in form.errors.values() for message in errors]
        response = make_response(" ".join(messages) or "The story could not be previewed.", 400)
        response.mimetype = "text/plain"
    else:
        response = make_response(str(render_markdown(form.story_markdown.data)))
        response.mimetype = "text/html"
    response.headers["Cache-Control"] = "no-store"
    return response


# --- Photos -------------------------------------------------------------------------------------------------------


def photo_megabytes() -> int:
    return current_app.config["PHOTO_MAX_BYTES"] // (1024 * 1024)


def is_signed_in_producer() -> bool:
    # Flask-Login caches the user in `g` for the app context (see create_app's forget_cached_user): judge this
    # request by its own cookies.
    g.pop("_login_user", None)
    return bool(current_user.is_authenticated and getattr(current_user, "is_producer", False))


@bp.url_value_preprocessor
def allow_photo_sized_uploads(endpoint: str | None, _values: dict | None) -> None:
    """Let a producer's photo upload be up to PHOTO_MAX_BYTES; every other request keeps MAX_CONTENT_LENGTH.

    This runs before any before_request hook, and it must: the shop's security hook reads (and size-checks) every
    form body before the view runs. Anyone else posting here keeps the global limit.
    """
    if endpoint == "producer.add_photo" and request.method == "POST" and is_signed_in_producer():
        request.max_content_length = current_app.config["PHOTO_MAX_BYTES"]


@bp.errorhandler(RequestEntityTooLarge)
def explain_upload_too_large(error: RequestEntityTooLarge):
    """Say how large a photo may be, instead of a bare 413; nothing was saved."""
    photo_limit = current_app.config["PHOTO_MAX_BYTES"]
    if request.endpoint == "producer.add_photo" and request.max_content_length == photo_limit and request.view_args:
        batch_id = request.view_args.get("batch_id")
        return render_template(
            "producer/photo_too_large.html", batch_id=batch_id, max_photo_megabytes=photo_megabytes()
        ), 413
    error.description = FRIENDLY_DESCRIPTIONS[413]
    return render_template("errors/error.html", error=error), 413


@bp.route("/batches/<int:batch_id>/photos/new", methods=["GET", "POST"])
def add_photo(batch_id: int):
    """Upload a photo: checked by its content, stripped of metadata and stored in a few widths."""
    # The body may be as large as a photo (also raised before the security hook read it: allow_photo_sized_uploads).
    request.max_content_length = current_app.config["PHOTO_MAX_BYTES"]
    batch = batch_or_404(batch_id)
    form = PhotoUploadForm()
    if not form.validate_on_submit():
        status = INVALID if request.method == "POST" else 200
        return render_photo_upload(batch, form, status)

    end_read(db.session)  # decoding a large photo takes a moment: no transaction stays open meanwhile
    try:
        prepared = photos.prepare_photo(form.photo.data.read(), photos.PhotoSettings.from_config(current_app.config))
    except photos.PhotoRefused as refusal:
        form.photo.errors = [*form.photo.errors, refusal.message]
        return render_photo_upload(batch, form, INVALID)

    upload_folder = current_app.config["UPLOAD_FOLDER"]
    folder = photos.batch_folder(batch_id)
    created: list[str] = []
    try:
        with write_transaction(db.session):
            catalog.add_photo(
                db.session,
                acting_producer(),
                batch_id,
                prepared.describe(folder),
                form.alt_text.data,
                form.caption.data or "",
                clock.now(),
            )
            # Inside the transaction: if writing fails, no row is committed; if the commit fails, see below.
            created = photos.save_variants(upload_folder, prepared, folder)
    except NotFound:
        abort(404)
    except CatalogError as refusal:
        problems = show_refusal(form, refusal)
        return render_photo_upload(batch_or_404(batch_id), form, INVALID, problems)
    except OSError:
        log.exception("Could not store a photo for batch %s", batch_id)
        form.photo.errors = [*form.photo.errors, "The photo could not be stored on the server. Nothing was saved."]
        return render_photo_upload(batch_or_404(batch_id), form, INVALID)
    except BaseException:
        photos.discard_files(upload_folder, created)  # the row was rolled back: its files must not linger
        raise
    flash("Photo added.", "success")
    return redirect(url_for("producer.edit_batch", batch_id=batch_id, _anchor="photos"), code=303)


def render_photo_upload(batch: Batch, form: PhotoUploadForm, status: int, problems: list[str] | None = None):
    return render_template(
        "producer/add_photo.html",
        batch=batch,
        form=form,
        problems=problems or [],
        max_photo_megabytes=photo_megabytes(),
    ), status


@bp.route("/batches/<int:batch_id>/photos/<int:photo_id>/edit", methods=["GET", "POST"])
def edit_photo(batch_id: int, photo_id: int):
    """Change a photo's alt text and caption."""
    batch = batch_or_404(batch_id)
    photo = photo_or_404(batch, photo_id)
    form = PhotoEditForm(obj=photo)
    problems: list[str] = []
    if form.validate_on_submit():
        try:
            with write_transaction(db.session):
                catalog.edit_photo(
                    db.session,
                    acting_producer(),
                    batch_id,
                    photo_id,
                    form.alt_text.data,
                    form.caption.data or "",
                    clock.now(),
                )
        except NotFound:
            abort(404)
        except CatalogError as refusal:
            problems = show_refusal(form, refusal)
        else:
            flash("Photo saved.", "success")
            return redirect(url_for("producer.edit_batch", batch_id=batch_id, _anchor="photos"), code=303)
        batch = batch_or_404(batch_id)
        photo = photo_or_404(batch, photo_id)
    status = INVALID if request.method == "POST" else 200
    return render_template("producer/edit_photo.html", batch=batch, photo=photo, form=form, problems=problems), status


@bp.route("/batches/<int:batch_id>/photos/<int:photo_id>/delete", methods=["GET", "POST"])
def delete_photo(batch_id: int, photo_id: int):
    """Ask to confirm (GET); delete the photo, and its files once that has committed (POST)."""
    batch = batch_or_404(batch_id)
    photo = photo_or_404(batch, photo_id)
    form = PhotoActionForm()
    if not form.validate_on_submit():
        return render_template("producer/delete_photo.html", batch=batch, photo=photo, form=form)
    upload_folder = current_app.config["UPLOAD_FOLDER"]
    try:
        with write_transaction(db.session):
            unused = catalog.remove_photo(db.session, acting_producer(), batch_id, photo_id, clock.now())
            after_commit(
                db.session,
                f"remove-photo-files-{photo_id}",
                lambda: photos.discard_files(upload_folder, unused),
            )
    except NotFound:
        abort(404)
    flash("Photo deleted.", "success")
    return redirect(url_for("producer.edit_batch", batch_id=batch_id, _anchor="photos"), code=303)


@bp.post("/batches/<int:batch_id>/photos/<int:photo_id>/move")
def move_photo(batch_id: int, photo_id: int):
    """Move a photo one place up (towards the cover) or down."""
    form = PhotoMoveForm()
    if not form.validate_on_submit():
        abort(400, description="Move a photo up or down, using the buttons beside it.")
    try:
        with write_transaction(db.session):
            moved = catalog.move_photo(
                db.session,
                acting_producer(),
                batch_id,
                photo_id,
                -1 if form.direction.data == "up" else 1,
                clock.now(),
            )
    except NotFound:
        abort(404)
    if not moved:
        flash(f"That photo is already {'first' if form.direction.data == 'up' else 'last'}.", "info")
    return redirect(url_for("producer.edit_batch", batch_id=batch_id, _anchor=f"photo-{photo_id}"), code=303)


@bp.post("/batches/<int:batch_id>/photos/<int:photo_id>/cover")
def set_cover(batch_id: int, photo_id: int):
    """Make a photo the batch's cover: the one cards and shared links show."""
    form = PhotoActionForm()
    if not form.validate_on_submit():
        abort(400, description="The form was incomplete; nothing changed.")
    try:
        with write_transaction(db.session):
            changed = catalog.set_cover(db.session, acting_producer(), batch_id, photo_id, clock.now())
    except NotFound:
        abort(404)
    flash("Cover photo set." if changed else "That photo is already the cover.", "success" if changed else "info")
    return redirect(url_for("producer.edit_batch", batch_id=batch_id, _anchor="photos"), code=303)
