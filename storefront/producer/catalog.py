"""Products, batches, their stories and photos (stub: the photo/catalogue helper fills this in)."""

from flask import render_template

from storefront.producer import bp


@bp.get("/products")
def list_products():
    """Every product with its batches."""
    return render_template("producer/list_products.html")
