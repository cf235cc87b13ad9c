"""Image bytes -> model input. The only preprocessing code in rcyc (training/serving skew starts with a
second copy)."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .config import DEFAULT_MAX_PIXELS
from .errors import ImageError
from .spec import InputSpec  # noqa: F401  (part of this module's interface: preprocess(data, spec))

# We enforce our own pixel limit before decoding; Pillow's global bomb check would otherwise fire first
# with a less helpful message (and with a different threshold than the configured one).
Image.MAX_IMAGE_PIXELS = None




def decode(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode any Pillow-readable image into upright RGB, refusing oversized or non-image bytes.

    ``draft_size`` lets a JPEG decode at a reduced DCT scale no smaller than that size: a 12 MP photo
    then decodes in a fraction of the time, and the model never sees the lost detail anyway.
    """
    if not data:
        raise ImageError("the object is empty (0 bytes)", kind="EmptyImage", hint="Upload the image again.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(
                    f"the image has {width}x{height} = {width * height:,} pixels, more than the limit of "
                    f"{max_pixels:,}",
                    kind="ImageTooLarge",
                    hint="Downscale the image, or raise the limit (RCYC_MAX_PIXELS).",
                )
            if draft_size and image.format == "JPEG":
                image.draft("RGB", draft_size)
            image.seek(0)  # first frame of animations
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_rgb(image)
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ImageError(
            f"not a readable image ({type(exc).__name__})",
            kind="NotAnImage",
            hint="Use a JPEG, PNG, GIF, BMP, TIFF or WebP file.",
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(
            f"the image data is damaged or truncated ({exc})".replace("\n", " ")[:200],
            kind="CorruptImage",
            hint="Re-export or re-upload the image.",
        ) from None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit and float greyscale: stretch to 8 bits instead of clipping at 255.
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(array.max()), 1.0)
        image = Image.fromarray(np.clip(array / top * 255.0, 0, 255).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        # Transparent pixels become white, as the photo's background would be on a page.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def to_input(image: Image.Image, spec: InputSpec) -> np.ndarray:
    """An upright RGB image -> float32 array (height, width, 3) as the model expects."""
    resized = image.resize((spec.width, spec.height), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(resized, dtype=np.float32) / np.float32(255.0)


def preprocess(data: bytes, spec: InputSpec, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    return to_input(decode(data, max_pixels, draft_size=draft_size(spec)), spec)


def draft_size(spec: InputSpec) -> tuple[int, int]:
    # Draft at twice the input size (both orientations, since EXIF may rotate the image after decoding).
    side = 2 * max(spec.width, spec.height)
    return side, side


def decoded_pixels(data: bytes, max_pixels: int, draft: tuple[int, int]) -> int:
    """The pixels ``decode`` will hold for ``data``, from its header alone (a JPEG at its draft scale); 0 for
    bytes it refuses before decoding (no image, too many pixels)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
            if image.size[0] * image.size[1] > max_pixels:
                return 0
            if image.format == "JPEG":
                image.draft("RGB", draft)
            return image.size[0] * image.size[1]
    except Exception:  # decode says what is wrong with it
        return 0
