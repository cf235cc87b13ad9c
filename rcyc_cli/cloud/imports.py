"""``rcyc models import``: a trained model (a SageMaker job's ``model.tar.gz`` in S3 or on disk, a manifest
directory, a ``.h5``) into the bucket as a new immutable version, without moving the pointer; with a
promotion gate, made current only if it is not worse than the current model (the ``models promote --eval``
gate). This is the hook between a training job and the live function."""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path

from rcyc_core.errors import InputError, ModelError, RcycError
from rcyc_core.manifest import MANIFEST_NAME

from ..reporting import SILENT, Reporter

MAX_ARCHIVE_BYTES = 4 * 1024**3  # unpacked; a packaged model is ~30 MB
MAX_MEMBERS = 1000


def _unpack(archive: Path, into: Path) -> None:
    """Unpack a model archive into ``into`` only: regular files and folders, no links, no device files,
    nothing outside ``into`` (tarfile's ``data`` filter also refuses absolute paths and ``..``), bounded size."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            if len(members) > MAX_MEMBERS:
                raise InputError(f"{archive} has {len(members)} entries; a model archive has a handful")
            if sum(m.size for m in members) > MAX_ARCHIVE_BYTES:
                raise InputError(f"{archive} unpacks to more than {MAX_ARCHIVE_BYTES // 1024**3} GB")
            for member in members:
                if member.name.startswith("/") or ".." in Path(member.name).parts:
                    raise InputError(f"{archive} holds {member.name!r}, a path outside its folder", kind="UnsafeArchive",
                                     hint="Only import archives a training job wrote.")
                if not (member.isfile() or member.isdir()):
                    raise InputError(f"{archive} holds {member.name!r}, which is not a regular file or folder",
                                     hint="A model archive holds the model's files only.")
            tar.extractall(into, filter="data")
    except tarfile.FilterError as exc:
        raise InputError(f"{archive} tries to write outside its folder ({exc})", kind="UnsafeArchive",
                         hint="Only import archives a training job wrote.") from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InputError(f"{archive} is not a readable tar archive ({exc})", hint="Give the job's model.tar.gz.") from None


def _is_tar(path: Path) -> bool:
    """tarfile.is_tarfile, with a truncated or corrupt compressed file (EOFError, zlib/lzma/bz2 errors) named
    as such rather than escaping as an abort."""
    try:
        return tarfile.is_tarfile(path)
    except Exception as exc:
        raise InputError(f"{path} is a damaged archive ({exc})", hint="Download the job's model.tar.gz again.") from None


def _model_in(folder: Path) -> Path:
    """The model inside an unpacked archive: a manifest directory, its one .h5/.keras file, or a folder of
    Portland State files; at the top or in its one sub-folder."""
    keras_files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".h5", ".keras"))
    if (folder / MANIFEST_NAME).is_file() or len(keras_files) > 1:
        return folder
    if len(keras_files) == 1:
        return keras_files[0]
    subfolders = [p for p in folder.iterdir() if p.is_dir()]
    if len(subfolders) == 1:
        return _model_in(subfolders[0])
    raise InputError("the archive holds no model (no manifest.json or .h5 at its top or in its one folder)",
                     hint="Give the model.tar.gz of an rcyc training job, or a manifest directory.")


def _download(uri: str, into: Path, region: str | None, report: Reporter) -> Path:
    from .aws import Aws, aws_call, get_or_none
    from .buckets import parse_s3_uri

    hint = "Give s3://BUCKET/KEY/model.tar.gz (a training job's: training/jobs/<job>/output/model.tar.gz)."
    bucket, key = parse_s3_uri(uri, hint=hint)
    if not key or key.endswith("/"):
        raise InputError(f"{uri} names no object", hint=hint)
    s3 = Aws(region).client("s3")
    # HEAD answers a bare 404 for a missing bucket and a missing key alike
    head = get_or_none(f"read s3://{bucket}/{key}", s3.head_object, ("404", "NoSuchKey", "NoSuchBucket"), Bucket=bucket, Key=key)
    if head is None:
        raise InputError(f"{uri} does not exist (no such bucket or key)", hint=hint)
    if head.get("ContentLength", 0) > MAX_ARCHIVE_BYTES:
        raise InputError(f"{uri} is larger than {MAX_ARCHIVE_BYTES // 1024**3} GB; a packaged model is tens of MB")
    target = into / "model.tar.gz"
    report.status(f"downloading {uri}")
    aws_call(f"download {uri}", s3.download_file, bucket, key, str(target))
    return target


def _check_parity(directory: Path, report: Reporter) -> str:
    """A packaged model from elsewhere: its .tflite must answer as its .h5 does (the packager's own check).
    Without TensorFlow the .h5 cannot run: the check is skipped and the result says so."""
    import importlib.util

    from rcyc_core.manifest import Manifest
    from rcyc_core.packaging import parity

    from ..model_source import parity_samples

    manifest = Manifest.load(directory)
    if not (manifest.has("h5") and manifest.has("tflite")):
        return "not applicable (one format)"
    if importlib.util.find_spec("tensorflow") is None:
        report.notice("the .h5/.tflite parity is not re-checked: TensorFlow is not installed (pip install 'rcyc[keras]')")
        return "skipped (no TensorFlow)"
    report.status("checking that the .tflite answers as the .h5 does (parity)")
    result = parity(manifest, directory, parity_samples())
    if not result.ok:
        raise ModelError(f"the imported model's .tflite does not match its .h5: {result.describe()}",
                         hint="Train it again; rcyc's packager refuses such a pair.")
    return result.describe()


def import_model(source: str, bucket: str, name: str, version: str | None = None, region: str | None = None,
                 report: Reporter = SILENT) -> dict:
    """Unpack, validate by behaviour, upload as models/<name>/<version>/ (never moving the pointer). The
    result says ``promoted`` (False) and ``gate`` (None): :func:`rcyc_cli.evaluate.session.gate_import`
    runs the promotion gate on it and promotes only if the model is not worse."""
    from . import buckets, models

    # checked before any download or unpacking, not after the model was packaged
    buckets.validate_bucket_name(bucket)
    for segment, what in ((name, "model name"), (version, "version")):
        if segment is not None:
            models._check_segment(segment, what)
    with tempfile.TemporaryDirectory(prefix="rcyc-import-") as tmp:
        tmp = Path(tmp)
        try:
            parity, uploaded = _import(source, tmp, bucket, name, version, region, report)
        except RcycError as exc:
            # a file of the archive is named "SOURCE:member", not by the temporary folder it was unpacked into
            exc.args = (str(exc).replace(f"{tmp / 'unpacked'}/", f"{source}:"),)
            raise
    return {**uploaded, "source": source, "parity": parity, "promoted": False, "gate": None}


def _import(source: str, tmp: Path, bucket: str, name: str, version: str | None, region: str | None,
            report: Reporter) -> tuple[str, dict]:
    from . import models

    if source.startswith("s3://"):
        path = _download(source, tmp, region, report)
    else:
        path = Path(source)
        if not path.exists():
            raise InputError(f"{source} does not exist", hint="Give s3://…/model.tar.gz, a .tar.gz, a manifest directory or a .h5.")
    if path.is_file() and _is_tar(path):
        unpacked = tmp / "unpacked"
        unpacked.mkdir()
        report.status(f"unpacking {path.name}")
        _unpack(path, unpacked)
        path = _model_in(unpacked)
    parity = "checked by the packager" if not (path.is_dir() and (path / MANIFEST_NAME).is_file()) else _check_parity(path, report)
    return parity, models.upload_model(path, bucket, name, version, promote=False, region=region, report=report)
