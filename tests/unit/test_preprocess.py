import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from rcyc_core.errors import ImageError
from rcyc_core.preprocess import InputSpec, decode, preprocess
from tests.conftest import IMAGES, class_images, edge_images, examples

SPEC = InputSpec(128, 128)


@pytest.mark.parametrize("path", [p for _, p in class_images()] + edge_images(), ids=lambda p: p.name)
def test_every_fixture_image_becomes_a_unit_scaled_rgb_array(path):
    array = preprocess(path.read_bytes(), SPEC)
    assert array.shape == (128, 128, 3) and array.dtype == np.float32
    assert 0.0 <= array.min() and array.max() <= 1.0


def test_exif_rotation_is_applied():
    image = decode((IMAGES / "edge" / "exif_rotated.jpg").read_bytes())
    stored = Image.open(IMAGES / "edge" / "exif_rotated.jpg")
    assert stored.size == (120, 160)  # stored sideways
    assert image.size == (160, 120)  # shown upright


def test_transparency_becomes_white():
    image = decode((IMAGES / "edge" / "alpha.png").read_bytes())
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (255, 255, 255)


def test_cmyk_and_greyscale_become_rgb():
    for name in ("cmyk.jpg", "greyscale.png"):
        assert decode((IMAGES / "edge" / name).read_bytes()).mode == "RGB"


def test_sixteen_bit_png_is_scaled_not_clipped():
    data = np.full((4, 4), 32768, dtype=np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(data).save(buffer, "PNG")
    assert decode(buffer.getvalue()).getpixel((0, 0)) == (127, 127, 127)


@pytest.mark.parametrize("name,kind", [("empty.jpg", "EmptyImage"), ("not_an_image.jpg", "NotAnImage"), ("truncated.jpg", "CorruptImage")])
def test_bad_bytes_raise_a_named_image_error(name, kind):
    with pytest.raises(ImageError) as caught:
        decode((IMAGES / "bad" / name).read_bytes())
    assert caught.value.kind == kind


def test_pixel_limit_is_checked_before_decoding():
    data = (IMAGES / "edge" / "large_4000x3000.jpg").read_bytes()
    with pytest.raises(ImageError) as caught:
        decode(data, max_pixels=1_000_000)
    assert caught.value.kind == "ImageTooLarge" and "12,000,000" in caught.value.message


@settings(max_examples=examples(200), deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_only_ever_raise_image_error(data):
    try:
        array = preprocess(data, SPEC)
    except ImageError:
        return
    assert array.shape == (128, 128, 3)


@settings(max_examples=examples(60), deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.sampled_from(["RGB", "RGBA", "L", "LA", "P", "CMYK", "I;16", "1"]),
       st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"]))
def test_any_size_mode_and_format_gives_the_input_shape(width, height, mode, fmt):
    image = Image.new(mode, (width, height))
    buffer = io.BytesIO()
    try:
        image.save(buffer, fmt)
    except (OSError, ValueError, KeyError):
        return  # this format cannot store this mode: nothing to test
    assert preprocess(buffer.getvalue(), SPEC).shape == (128, 128, 3)
