"""Forms for products, batches (with their provenance rows and story) and photos."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import DateField, FieldList, Form, FormField, HiddenField, StringField, SubmitField, TextAreaField
from wtforms.validators import AnyOf, InputRequired, Length, Optional

from storefront.domain import catalog
from storefront.domain.catalog import BatchDetails, ProductDetails

# Blank provenance rows offered below the filled ones, for adding facts without JavaScript.
BLANK_FACT_ROWS = 3


def strip_whitespace(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class ProductForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[InputRequired("Give the product a name."), Length(max=catalog.MAX_NAME)],
        filters=[strip_whitespace],
    )
    category = StringField(
        "Category", validators=[Optional(), Length(max=catalog.MAX_CATEGORY)], filters=[strip_whitespace]
    )
    description = TextAreaField("Description", validators=[Optional(), Length(max=catalog.MAX_DESCRIPTION)])
    slug = StringField("Web address (slug)", validators=[Optional(), Length(max=catalog.MAX_SLUG)])

    def details(self) -> ProductDetails:
        return ProductDetails(
            name=self.name.data or "",
            category=self.category.data or "",
            description=self.description.data or "",
            slug=self.slug.data or "",
        )


class FactForm(Form):
    """One provenance row; both parts empty means "no row" (the blank rows offered for adding facts)."""

    label = StringField("Label", validators=[Length(max=catalog.MAX_FACT_LABEL)], filters=[strip_whitespace])
    value = StringField("Value", validators=[Length(max=catalog.MAX_FACT_VALUE)], filters=[strip_whitespace])

    def is_blank(self) -> bool:
        return not (self.label.data or self.value.data)


class BatchForm(FlaskForm):
    code = StringField(
        "Batch code",
        validators=[InputRequired("Give the batch its code, e.g. B-2026-07."), Length(max=catalog.MAX_CODE)],
        filters=[strip_whitespace],
    )
    title = StringField(
        "Title",
        validators=[InputRequired("Give the batch a title."), Length(max=catalog.MAX_TITLE)],
        filters=[strip_whitespace],
    )
    slug = StringField("Web address (slug)", validators=[Optional(), Length(max=catalog.MAX_SLUG)])
    produced_on = DateField(
        "Produced on",
        validators=[InputRequired("Enter the date the batch was produced.")],
        format="%Y-%m-%d",
    )
    summary = TextAreaField("Summary", validators=[Optional(), Length(max=catalog.MAX_SUMMARY)])
    facts = FieldList(FormField(FactForm), min_entries=0, max_entries=catalog.MAX_FACTS + BLANK_FACT_ROWS + 10)
    story_markdown = TextAreaField("Story", validators=[Optional(), Length(max=catalog.MAX_STORY)])
    save = SubmitField("Save batch")
    preview = SubmitField("Preview the story")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Refusals about the provenance rows as a whole ("row 2 needs a value"), shown above the rows.
        self.fact_problems: list[str] = []

    def fact_rows(self) -> list[tuple[str, str]]:
        return [(row.form.label.data or "", row.form.value.data or "") for row in self.facts if not row.form.is_blank()]

    def details(self) -> BatchDetails:
        return BatchDetails(
            code=self.code.data or "",
            title=self.title.data or "",
            slug=self.slug.data or "",
            produced_on=self.produced_on.data,
            summary=self.summary.data or "",
            story_markdown=self.story_markdown.data or "",
            facts=self.fact_rows(),
        )

    def offer_blank_rows(self, count: int = BLANK_FACT_ROWS) -> None:
        """Leave `count` empty rows at the end, for adding facts without JavaScript."""
        blank_at_end = 0
        for row in reversed(self.facts.entries):
            if not row.form.is_blank():
                break
            blank_at_end += 1
        for _ in range(count - blank_at_end):
            self.facts.append_entry()


class StoryPreviewForm(FlaskForm):
    """The story as typed so far, for the live preview."""

    story_markdown = TextAreaField("Story", validators=[Optional(), Length(max=catalog.MAX_STORY)])


class PhotoUploadForm(FlaskForm):
    photo = FileField("Photo", validators=[FileRequired("Choose a photo to upload.")])
    alt_text = StringField(
        "Description for people who cannot see it (alt text)",
        validators=[
            InputRequired("Describe the photo for people who cannot see it, e.g. “Oak casks stacked three high”."),
            Length(max=catalog.MAX_ALT_TEXT),
        ],
        filters=[strip_whitespace],
    )
    caption = StringField("Caption (optional)", validators=[Optional(), Length(max=catalog.MAX_CAPTION)])


class PhotoEditForm(FlaskForm):
    alt_text = StringField(
        "Description for people who cannot see it (alt text)",
        validators=[
            InputRequired("Describe the photo for people who cannot see it, e.g. “Oak casks stacked three high”."),
            Length(max=catalog.MAX_ALT_TEXT),
        ],
        filters=[strip_whitespace],
    )
    caption = StringField("Caption (optional)", validators=[Optional(), Length(max=catalog.MAX_CAPTION)])


class PhotoMoveForm(FlaskForm):
    direction = HiddenField(validators=[AnyOf(["up", "down"], message="Move a photo up or down.")])


class PhotoActionForm(FlaskForm):
    """Only the CSRF token: setting the cover and deleting are POSTs another site cannot make for the producer."""
