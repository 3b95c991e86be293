"""The photo pipeline, on real images drawn with Pillow: what it accepts, what it refuses, what it stores."""

from __future__ import annotations

import struct
import zlib
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image, ImageCms
from PIL.ExifTags import GPS, IFD, Base

from storefront.photos import (
    PhotoRefused,
    PhotoSettings,
    discard_files,
    prepare_photo,
    save_variants,
    target_widths,
)

ORIENTATION = Base.Orientation.value


def encoded(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def landscape(width: int = 2000, height: int = 1000) -> Image.Image:
    """Red on the left half, blue on the right: which way up a copy is can be read from its pixels."""
    image = Image.new("RGB", (width, height), (220, 30, 30))
    image.paste((30, 30, 220), (width // 2, 0, width, height))
    return image


def opened(data: bytes) -> Image.Image:
    image = Image.open(BytesIO(data))
    image.load()
    return image


def exif_with_gps(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[Base.Make.value] = "Phone Co."
    exif[Base.Model.value] = "Pocket 12"
    gps = exif.get_ifd(IFD.GPSInfo)
    gps[GPS.GPSLatitudeRef] = "N"
    gps[GPS.GPSLatitude] = (52.0, 58.0, 12.5)
    gps[GPS.GPSLongitudeRef] = "W"
    gps[GPS.GPSLongitude] = (6.0, 54.0, 3.1)
    return exif


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width × height greyscale pixels but holds the data of only its first row."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    first_row = zlib.compress(b"\x00" + b"\x80" * width)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", first_row)


def declared_size(png: bytes) -> tuple[int, int]:
    """The width and height a PNG's header declares, read without Pillow (which refuses to open a bomb)."""
    return struct.unpack(">II", png[16:24])


@pytest.fixture(scope="module")
def bomb_png() -> bytes:
    """20,000 × 20,000 pixels (400 megapixels; 1.2 GB once decoded as RGB) in a file of about 50 kB."""
    image = Image.new("1", (20_000, 20_000))
    data = encoded(image, "PNG")
    image.close()
    return data


# --- What is stored ------------------------------------------------------------------------------------------------


def test_a_large_photo_becomes_the_configured_widths_narrowest_first():
    prepared = prepare_photo(encoded(landscape(3000, 2000), "JPEG", quality=90))

    assert [(variant.width, variant.height) for variant in prepared.variants] == [(480, 320), (960, 640), (1600, 1067)]
    for variant in prepared.variants:
        copy = opened(variant.data)
        assert copy.format == "JPEG"
        assert copy.size == (variant.width, variant.height)
        assert copy.info.get("progressive") or copy.info.get("progression")
    assert prepared.source_format == "JPEG"


def test_a_multi_picture_jpeg_from_a_phone_is_accepted_as_a_jpeg():
    upload = encoded(landscape(1200, 600), "MPO", save_all=True, append_images=[landscape(300, 150)])
    assert Image.open(BytesIO(upload)).format == "MPO"

    prepared = prepare_photo(upload)

    assert prepared.source_format == "JPEG"
    assert [variant.width for variant in prepared.variants] == [480, 960, 1200]


def test_a_photo_is_never_enlarged_and_always_has_one_copy():
    small = prepare_photo(encoded(landscape(300, 200), "PNG"))
    middling = prepare_photo(encoded(landscape(1200, 800), "WEBP"))

    assert [(variant.width, variant.height) for variant in small.variants] == [(300, 200)]
    assert [variant.width for variant in middling.variants] == [480, 960, 1200]
    assert middling.source_format == "WebP"


def test_target_widths_follow_the_settings():
    assert target_widths(5000, [480, 960, 1600]) == [480, 960, 1600]
    assert target_widths(1600, [480, 960, 1600]) == [480, 960, 1600]
    assert target_widths(1000, [480, 960, 1600]) == [480, 960, 1000]
    assert target_widths(100, [480, 960, 1600]) == [100]
    settings = PhotoSettings(widths=(800, 400))
    assert settings.widths == (400, 800)
    assert [variant.width for variant in prepare_photo(encoded(landscape(900, 600), "PNG"), settings).variants] == [
        400,
        800,
    ]


def test_exif_with_gps_position_is_removed_from_every_copy():
    upload = encoded(landscape(1000, 500), "JPEG", exif=exif_with_gps(), comment=b"shot at the farm gate")
    assert opened(upload).getexif().get_ifd(IFD.GPSInfo), "the test photo must carry a GPS position"

    prepared = prepare_photo(upload)

    for variant in prepared.variants:
        copy = opened(variant.data)
        assert dict(copy.getexif()) == {}
        assert "exif" not in copy.info
        assert "comment" not in copy.info
        assert "icc_profile" not in copy.info
        assert "xmp" not in copy.info
        assert b"Phone Co." not in variant.data and b"Pocket 12" not in variant.data


@pytest.mark.parametrize(
    ("orientation", "left_colour"),
    [(1, "red"), (3, "blue"), (6, "red"), (8, "blue")],
    ids=["upright", "upside-down", "turned-right", "turned-left"],
)
def test_orientation_is_applied_to_the_pixels_before_the_exif_goes(orientation, left_colour):
    # A phone held on its side stores the pixels sideways and says so in EXIF; the copies are turned upright.
    upload = encoded(landscape(1000, 500), "JPEG", exif=exif_with_gps(orientation))

    largest = opened(prepare_photo(upload).variants[-1].data)

    sideways = orientation in {6, 8}
    assert largest.size == ((500, 1000) if sideways else (1000, 500))
    if sideways:  # turned a quarter: the red half is now the top or the bottom
        top = largest.getpixel((250, 100))
        assert (top[0] > top[2]) == (orientation == 6)
    else:
        left = largest.getpixel((100, 250))
        assert ("red" if left[0] > left[2] else "blue") == left_colour
    assert ORIENTATION not in largest.getexif()


def test_transparency_is_flattened_onto_white():
    logo = Image.new("RGBA", (600, 400), (0, 0, 0, 0))
    logo.paste((20, 120, 40, 255), (200, 100, 400, 300))

    copy = opened(prepare_photo(encoded(logo, "PNG")).variants[-1].data)

    assert copy.mode == "RGB"
    corner, middle = copy.getpixel((10, 10)), copy.getpixel((300, 200))
    assert min(corner) >= 250
    assert middle[1] > 100 and middle[0] < 60


def test_palette_png_with_a_transparent_colour_is_flattened_too():
    image = Image.new("P", (300, 200), 0)
    image.putpalette([0, 0, 0, 200, 30, 30] + [0, 0, 0] * 254)
    image.paste(1, (0, 0, 150, 200))

    copy = opened(prepare_photo(encoded(image, "PNG", transparency=0)).variants[-1].data)

    assert min(copy.getpixel((250, 100))) >= 250  # transparent black became white
    assert copy.getpixel((50, 100))[0] > 150


def test_sixteen_bit_greyscale_keeps_its_tones():
    grey = Image.new("I;16", (200, 100), 32768)

    copy = opened(prepare_photo(encoded(grey, "PNG")).variants[-1].data)

    assert 110 <= copy.getpixel((50, 50))[0] <= 145


def test_a_colour_profile_is_applied_and_not_stored():
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    upload = encoded(landscape(800, 400), "JPEG", icc_profile=srgb, quality=95)

    copy = opened(prepare_photo(upload).variants[-1].data)

    assert "icc_profile" not in copy.info
    red = copy.getpixel((100, 200))
    assert red[0] > 190 and red[2] < 70


def test_a_broken_colour_profile_is_ignored():
    upload = encoded(landscape(800, 400), "JPEG", icc_profile=b"not a profile at all", quality=95)

    copy = opened(prepare_photo(upload).variants[-1].data)

    assert "icc_profile" not in copy.info
    assert copy.getpixel((100, 200))[0] > 190


def test_the_name_is_a_hash_of_the_upload():
    upload = encoded(landscape(700, 400), "PNG")

    first, again = prepare_photo(upload), prepare_photo(upload)
    other = prepare_photo(encoded(landscape(701, 400), "PNG"))

    assert first.digest == again.digest != other.digest
    assert first.describe("batches/7") == [
        {"width": 480, "height": 274, "path": f"batches/7/{first.digest}-480.jpg"},
        {"width": 700, "height": 400, "path": f"batches/7/{first.digest}-700.jpg"},
    ]


# --- What is refused ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"<!doctype html><html><script>alert(1)</script></html>",
        b"<?php system($_GET['c']); ?>",
        b"\xff\xd8\xff\xe0 not really a jpeg at all",
        b"GIF89a",
    ],
    ids=["html", "php", "jpeg-magic-only", "gif-magic-only"],
)
def test_a_file_that_is_not_an_image_is_refused_whatever_its_name(content):
    with pytest.raises(PhotoRefused, match="not a photo the shop can read|damaged"):
        prepare_photo(content)


def test_an_empty_file_is_refused():
    with pytest.raises(PhotoRefused, match="empty"):
        prepare_photo(b"")


@pytest.mark.parametrize("image_format", ["GIF", "BMP", "TIFF"])
def test_real_images_in_other_formats_are_refused_by_name(image_format):
    with pytest.raises(PhotoRefused, match=f"{image_format} images are not accepted"):
        prepare_photo(encoded(landscape(200, 100), image_format))


def test_a_truncated_jpeg_is_refused():
    whole = encoded(Image.effect_noise((800, 600), 60).convert("RGB"), "JPEG", quality=90)

    with pytest.raises(PhotoRefused, match="damaged or incomplete"):
        prepare_photo(whole[: len(whole) // 2])


def test_a_truncated_png_is_refused():
    whole = encoded(Image.effect_noise((400, 300), 60).convert("RGB"), "PNG")

    with pytest.raises(PhotoRefused, match="damaged or incomplete"):
        prepare_photo(whole[: len(whole) * 2 // 3])


def test_a_png_with_a_corrupted_byte_is_refused():
    whole = bytearray(encoded(Image.effect_noise((300, 200), 60).convert("RGB"), "PNG"))
    whole[len(whole) // 2] ^= 0xFF

    with pytest.raises(PhotoRefused, match="damaged or incomplete"):
        prepare_photo(bytes(whole))


def test_a_decompression_bomb_is_refused(bomb_png):
    assert len(bomb_png) < 200_000
    assert declared_size(bomb_png) == (20_000, 20_000)

    with pytest.raises(PhotoRefused, match="too many pixels"):
        prepare_photo(bomb_png)


@pytest.mark.parametrize(
    ("width", "height"),
    [(8_000, 6_000), (10_000, 10_000)],
    ids=["over-our-limit", "over-pillows-warning-limit"],
)
def test_the_pixel_limit_is_checked_from_the_header_before_any_pixel_is_decoded(width, height):
    # 48 megapixels is over our 40 MP limit but under Pillow's own; 100 MP makes Pillow warn (an error in the tests).
    # The file holds one row of pixels: had the pipeline tried to decode it, it would say "damaged"; it says "too
    # many pixels", from the header alone.
    with pytest.raises(PhotoRefused, match="too many pixels"):
        prepare_photo(png_header_only(width, height))
    with pytest.raises(PhotoRefused, match="damaged"):
        prepare_photo(png_header_only(800, 600))


def test_the_pixel_limit_comes_from_the_settings():
    upload = encoded(landscape(1000, 1000), "PNG")

    with pytest.raises(PhotoRefused, match="up to 0.5 megapixels"):
        prepare_photo(upload, PhotoSettings(max_pixels=500_000))
    assert prepare_photo(upload, PhotoSettings(max_pixels=1_000_000)).variants


# --- Files ----------------------------------------------------------------------------------------------------------


def test_copies_are_written_whole_and_only_once(tmp_path: Path):
    prepared = prepare_photo(encoded(landscape(1000, 500), "PNG"))

    created = save_variants(tmp_path, prepared, "batches/3")
    again = save_variants(tmp_path, prepared, "batches/3")

    assert created == [variant["path"] for variant in prepared.describe("batches/3")]
    assert again == []  # already there: nothing (re)created, so nothing for a failed request to remove
    assert sorted(path.name for path in (tmp_path / "batches/3").iterdir()) == sorted(
        f"{prepared.digest}-{width}.jpg" for width in (480, 960, 1000)
    )
    assert opened((tmp_path / created[-1]).read_bytes()).size == (1000, 500)


def test_discarding_removes_the_files_and_the_empty_folder(tmp_path: Path):
    prepared = prepare_photo(encoded(landscape(600, 300), "PNG"))
    created = save_variants(tmp_path, prepared, "batches/4")

    discard_files(tmp_path, [*created, "batches/4/already-gone.jpg"])

    assert not (tmp_path / "batches/4").exists()


def test_paths_cannot_leave_the_upload_folder(tmp_path: Path):
    prepared = prepare_photo(encoded(landscape(600, 300), "PNG"))
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")

    with pytest.raises(ValueError, match="not inside the upload folder"):
        save_variants(tmp_path / "uploads", prepared, "../..")
    discard_files(tmp_path / "uploads", ["../outside.txt"])

    assert outside.read_text() == "keep me"


def test_demo_photos_go_through_the_pipeline(tmp_path: Path):
    from storefront.demo import BATCHES, ensure_photo

    spec = BATCHES[0].photos[0]

    variants = ensure_photo(tmp_path, "demo/test-1.jpg", spec, "demo/test")
    again = ensure_photo(tmp_path, "demo/test-1.jpg", spec, "demo/test")  # drawn once, the same copies after

    assert variants == again
    assert [(variant["width"], variant["height"]) for variant in variants] == [(480, 320), (960, 640), (1200, 800)]
    for variant in variants:
        assert variant["path"].startswith("demo/test/")
        copy = opened((tmp_path / variant["path"]).read_bytes())
        assert copy.size == (variant["width"], variant["height"]) and "exif" not in copy.info
