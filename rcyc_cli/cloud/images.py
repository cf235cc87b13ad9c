"""Images into the bucket: each checked with the function's own decoder before anything is uploaded."""

from __future__ import annotations

from pathlib import Path

from rcyc_core.errors import InputError

from ..defaults import IMAGES_PREFIX
from ..files import keyed_by_name
from ..reporting import SILENT, Reporter
from . import buckets, store
from .aws import Aws


IMAGE_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "BMP": "image/bmp", "TIFF": "image/tiff",
               "WEBP": "image/webp", "MPO": "image/jpeg"}



def check_image(path: Path) -> str:
    """The content type of an image file; InputError if it does not decode (the function's own decoder)."""
    from PIL import Image

    from rcyc_core.errors import ImageError
    from rcyc_core.preprocess import decode

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file", hint="Check the path.")
    data = path.read_bytes()
    try:
        decode(data)
    except ImageError as exc:
        raise InputError(f"{path} is not an image the function can read: {exc.message}", kind=exc.kind, hint=exc.hint) from None
    import io

    with Image.open(io.BytesIO(data)) as image:
        return IMAGE_TYPES.get(image.format or "", f"image/{(image.format or 'octet-stream').lower()}")



def upload_images(paths: list[Path], bucket: str, prefix: str = IMAGES_PREFIX, region: str | None = None,
                  report: Reporter = SILENT, s3=None) -> dict:
    """Upload to ``bucket`` on AWS (or the endpoint boto3 is pointed at), or through the client ``s3``
    (the local stack's S3)."""
    buckets.validate_bucket_name(bucket)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    from ..files import expand_images  # the same expansion invoke-local does

    paths = expand_images([Path(p) for p in paths])
    if not paths:
        raise InputError("no image files were found in what was given", hint="Give image files, a directory of them, or a quoted glob pattern.")
    types = {p: check_image(p) for p in paths}  # refuse before uploading anything
    pairs = keyed_by_name(paths, prefix)
    if s3 is None:
        aws = Aws(region)
        s3, region = aws.client("s3"), aws.region
    report.status(f"checking bucket {bucket}")
    created = buckets.ensure_private_bucket(s3, bucket, region)
    store.put_images(s3, bucket, pairs, types, progress=report.upload)
    return {"bucket": bucket, "bucket_created": created,
            "images": [{"file": str(p), "key": key, "content_type": types[p], "bytes": p.stat().st_size} for p, key in pairs]}

