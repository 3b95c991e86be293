"""The photo pipeline: make sure an upload is a real photo, then re-encode it into a few clean JPEG widths.

Nothing the browser says is believed. The file's own bytes are read with Pillow: the format must be JPEG, PNG or
WebP; the pixel count in its header is checked before a single pixel is decoded (a 50 kB PNG can unpack to
gigabytes); the whole file is then verified and decoded, so a truncated or damaged file is refused. What is stored
is never the upload itself but new JPEGs drawn from its pixels: turned upright by its EXIF orientation, converted to
sRGB, transparency flattened onto white, and saved without EXIF (camera, GPS position), comments, XMP or ICC data.

Each photo is stored in a few widths (PHOTO_WIDTHS, never wider than the original) named by a hash of the upload,
e.g. `batches/7/3f2a...-960.jpg`, and served with `srcset`. This module knows nothing of requests or the database:
the view checks and encodes (`prepare_photo`), the domain records the row, and the files are written by
`save_variants` inside the same transaction and removed by `discard_files` when it fails or a photo is deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from storefront.domain.errors import DomainError

log = logging.getLogger(__name__)

# Pillow's names for the formats accepted; MPO is how Pillow names the multi-picture JPEGs many phones take.
ACCEPTED_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP"}
DEFAULT_WIDTHS = (480, 960, 1600)
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_JPEG_QUALITY = 82
BACKGROUND = (255, 255, 255)
HASH_LENGTH = 32  # hex digits of the upload's SHA-256 in file names: 128 bits, no collision in any shop's lifetime
SRGB = ImageCms.createProfile("sRGB")


class PhotoRefused(DomainError):
    """The upload is not a photo the shop can use; the message says why, for the producer."""


@dataclass(frozen=True)
class PhotoSettings:
    """What the pipeline accepts and makes: the widths to encode, the most pixels a photo may have, JPEG quality."""

    widths: tuple[int, ...] = DEFAULT_WIDTHS
    max_pixels: int = DEFAULT_MAX_PIXELS
    quality: int = DEFAULT_JPEG_QUALITY

    def __post_init__(self) -> None:
        if not self.widths or any(width < 1 for width in self.widths):
            raise ValueError(f"PHOTO_WIDTHS must be positive widths, got {self.widths!r}")
        object.__setattr__(self, "widths", tuple(sorted(set(self.widths))))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PhotoSettings:
        return cls(
            widths=tuple(config.get("PHOTO_WIDTHS") or DEFAULT_WIDTHS),
            max_pixels=config.get("PHOTO_MAX_PIXELS", DEFAULT_MAX_PIXELS),
            quality=config.get("PHOTO_JPEG_QUALITY", DEFAULT_JPEG_QUALITY),
        )


@dataclass(frozen=True)
class EncodedVariant:
    width: int
    height: int
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class PreparedPhoto:
    """A checked upload re-encoded in memory: its content hash and its copies, narrowest first."""

    digest: str
    source_format: str
    variants: tuple[EncodedVariant, ...]

    def describe(self, folder: str) -> list[dict]:
        """The copies as stored in BatchImage.variants: [{"width", "height", "path"}], narrowest first."""
        return [
            {"width": variant.width, "height": variant.height, "path": variant_path(folder, self.digest, variant.width)}
            for variant in self.variants
        ]


def variant_path(folder: str, digest: str, width: int) -> str:
    return f"{folder}/{digest}-{width}.jpg"


def batch_folder(batch_id: int) -> str:
    """Where a batch's photos live under UPLOAD_FOLDER."""
    return f"batches/{int(batch_id)}"


def target_widths(original_width: int, widths: Sequence[int]) -> list[int]:
    """The widths to encode: every configured width narrower than the photo, plus the photo's own width when it is
    narrower than the widest configured one (never enlarged; always at least one copy)."""
    chosen = [width for width in sorted(widths) if width < original_width]
    if original_width <= max(widths):
        chosen.append(original_width)
    return chosen


# --- Checking and decoding ----------------------------------------------------------------------------------------


def prepare_photo(data: bytes, settings: PhotoSettings | None = None) -> PreparedPhoto:
    """Check an upload by its content and re-encode it into clean JPEG copies; raise PhotoRefused if it is unusable."""
    settings = settings or PhotoSettings()
    if not data:
        raise PhotoRefused("The file is empty. Choose a JPEG, PNG or WebP photo.")
    try:
        source_format = check_header(data, settings.max_pixels)
        picture = decode(data, max(settings.widths))
    except PhotoRefused:
        raise
    # Pillow itself warns about an image above its own limit (89 megapixels) and raises above twice that. Its
    # limit is above ours, so such an image is refused by our own check anyway; where warnings are errors (the
    # tests), the warning arrives as an exception. (warnings.catch_warnings would change process-wide state under
    # a threaded server, so it is not used.)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise too_many_pixels(settings.max_pixels) from error
    except UnidentifiedImageError as error:
        raise not_a_photo() from error
    except Exception as error:
        # Any other failure to read an untrusted file means it is damaged: refuse it, never answer with a 500.
        log.info("Refused a damaged photo upload: %r", error)
        raise PhotoRefused(
            "The file is damaged or incomplete (it may not have finished uploading). Nothing was saved: "
            "export the photo again and upload it once more."
        ) from error
    try:
        variants = tuple(
            encode(picture, width, settings.quality) for width in target_widths(picture.width, settings.widths)
        )
    finally:
        picture.close()
    digest = hashlib.sha256(data).hexdigest()[:HASH_LENGTH]
    return PreparedPhoto(digest=digest, source_format=ACCEPTED_FORMATS[source_format], variants=variants)


def not_a_photo() -> PhotoRefused:
    return PhotoRefused(
        "This file is not a photo the shop can read. Upload a JPEG, PNG or WebP image (whatever its name says, "
        "the file itself is checked)."
    )


def too_many_pixels(max_pixels: int) -> PhotoRefused:
    megapixels = max_pixels / 1_000_000
    return PhotoRefused(
        f"This image has too many pixels: the shop accepts up to {megapixels:g} megapixels (for example "
        f"{round((max_pixels * 3 / 2) ** 0.5):,} × {round((max_pixels * 2 / 3) ** 0.5):,}). Export a smaller copy "
        "and upload that."
    )


def check_header(data: bytes, max_pixels: int) -> str:
    """Read only the header: the format must be accepted and the pixel count within `max_pixels`. Return the format."""
    with Image.open(BytesIO(data)) as image:
        image_format = image.format or ""
        if image_format not in ACCEPTED_FORMATS:
            name = image_format or "This file's"
            raise PhotoRefused(f"{name} images are not accepted. Upload a JPEG, PNG or WebP photo.")
        width, height = image.size
        if width < 1 or height < 1:
            raise not_a_photo()
        if width * height > max_pixels:
            raise too_many_pixels(max_pixels)
        # verify() reads the whole file and checks its structure (PNG checksums, for one) without decoding pixels.
        image.verify()
    return image_format


def decode(data: bytes, largest_width: int) -> Image.Image:
    """Decode the (checked) upload into an upright, sRGB, opaque RGB image with no metadata attached."""
    with Image.open(BytesIO(data)) as image:
        if image.format in {"JPEG", "MPO"}:
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when even that is at least as big as the widest copy on
            # both sides (so whichever way the photo is turned): a 24-megapixel photo decodes in a fraction of the
            # memory and time.
            image.draft("RGB", (largest_width, largest_width))
        image.load()
        icc_profile = image.info.get("icc_profile")
        upright = ImageOps.exif_transpose(image)
    try:
        rgb = to_srgb(upright, icc_profile)
    finally:
        upright.close()
    # A new image holding only the pixels: EXIF (GPS!), comments, XMP and the ICC profile stay behind in `info`.
    clean = Image.new("RGB", rgb.size)
    clean.paste(rgb)
    rgb.close()
    return clean


def has_alpha(image: Image.Image) -> bool:
    return image.mode in {"RGBA", "RGBa", "LA", "La", "PA"} or "transparency" in image.info


def to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """Convert to RGB in sRGB (the colours browsers assume), with any transparency flattened onto white."""
    if image.mode in {"I", "F"} or image.mode.startswith("I;16"):
        # 16-bit greyscale: scale to 8 bits (a plain convert would clip nearly every pixel to white).
        image = image.convert("I").point(lambda value: value / 256).convert("L")
    alpha = has_alpha(image)
    working = image.convert("RGBA" if alpha else ("CMYK" if image.mode == "CMYK" else "RGB"))
    if icc_profile:
        try:
            source = ImageCms.ImageCmsProfile(BytesIO(icc_profile))
            working = ImageCms.profileToProfile(working, source, SRGB, outputMode="RGBA" if alpha else "RGB")
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as error:
            # A broken or unusual profile: keep the pixel values as they are, which is what most viewers show anyway.
            log.info("Ignored an unusable ICC profile in an uploaded photo: %r", error)
    if alpha:
        flat = Image.new("RGB", working.size, BACKGROUND)
        flat.paste(working, mask=working.getchannel("A"))
        return flat
    return working.convert("RGB")


def encode(picture: Image.Image, width: int, quality: int) -> EncodedVariant:
    """One copy `width` pixels wide as a progressive JPEG with no metadata."""
    if width == picture.width:
        resized = picture
    else:
        height = max(1, round(picture.height * width / picture.width))
        resized = picture.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = BytesIO()
    resized.save(buffer, "JPEG", quality=quality, progressive=True, optimize=True)
    return EncodedVariant(width=resized.width, height=resized.height, data=buffer.getvalue())


# --- Files --------------------------------------------------------------------------------------------------------


def upload_path(upload_folder: str | Path, relative_path: str) -> Path:
    """The file for `relative_path` inside `upload_folder`; a path that would leave the folder is an error."""
    root = Path(upload_folder).resolve()
    target = (root / relative_path).resolve()
    if not target.is_relative_to(root) or target == root:
        raise ValueError(f"{relative_path!r} is not inside the upload folder")
    return target


def save_variants(upload_folder: str | Path, prepared: PreparedPhoto, folder: str) -> list[str]:
    """Write the copies under `upload_folder`/`folder`; return the paths this call created (not those already there).

    Each file appears whole or not at all (written aside, then renamed), so a reader never sees half a photo. If a
    write fails, the files this call created are removed before the error is raised.
    """
    created: list[str] = []
    try:
        for variant, description in zip(prepared.variants, prepared.describe(folder), strict=True):
            target = upload_path(upload_folder, description["path"])
            if target.is_file():
                continue  # the same upload, stored before: same name, same bytes
            target.parent.mkdir(parents=True, exist_ok=True)
            aside = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")
            try:
                aside.write_bytes(variant.data)
                os.replace(aside, target)
            finally:
                aside.unlink(missing_ok=True)
            created.append(description["path"])
    except BaseException:
        discard_files(upload_folder, created)
        raise
    return created


def discard_files(upload_folder: str | Path, paths: Iterable[str]) -> None:
    """Remove these files from the upload folder (missing ones are fine), then their folder if it is left empty."""
    folders = set()
    for relative_path in paths:
        try:
            target = upload_path(upload_folder, relative_path)
            target.unlink(missing_ok=True)
            folders.add(target.parent)
        except (OSError, ValueError):
            log.exception("Could not remove photo file %s", relative_path)
    for folder in folders:
        with contextlib.suppress(OSError):  # not empty (the batch's other photos), or already gone
            folder.rmdir()
