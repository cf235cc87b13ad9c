"""A labelled image folder: ``ROOT/<label>/**/<image>``, the layout ``rcyc eval`` and ``rcyc train`` read.

The top-level folders name the labels (``rcyc_core.labels.LABELS``); nested folders below a label folder
are allowed and inherit its label. A top-level folder with another name is an error unless a mapping
(``[eval.labels]`` in ``rcyc.toml``: folder name -> label) says which label it holds. Hidden entries
(names starting with ``.``) are ignored everywhere, and so are non-image files at the top level (a
README beside the label folders is fine).

Below a label folder:

- a file whose extension is one of :data:`IMAGE_EXTENSIONS` (any case) and that is a regular file
  (directly or through a symbolic link) is an image;
- anything else (another extension, a FIFO, a socket, a device, a dangling link) lands in
  ``Dataset.skipped`` with the reason, so a caller can say what it did not read;
- directory links are followed once: a directory already visited (the same device and inode, e.g. a
  link loop) is skipped with a reason instead of being walked again;
- a link (to a file or a folder) that leads out of ``ROOT`` is never followed: it is skipped with the
  reason (a link to ``/`` would otherwise walk the whole disk, one to ``/usr/share`` score its icons).

Whether an image file *decodes* is not checked here (that costs a read of every file); the classifier
reports broken images per file.

The order is deterministic: images sorted by their path relative to ``ROOT``, compared part by part.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from rcyc_core.errors import InputError
from rcyc_core.labels import LABELS

from .files import IMAGE_SUFFIXES, shown

IMAGE_EXTENSIONS = IMAGE_SUFFIXES  # one list of image file names for every command (files.py)

MAPPING_EXAMPLE = 'cans = "soda_cans"'


@dataclass(frozen=True)
class LabelledImage:
    """One image of the dataset and the label its folder gives it."""

    path: Path
    label: str


@dataclass
class Dataset:
    """The images found under ``root`` and the files that were passed over (with the reason)."""

    root: Path
    images: list[LabelledImage]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    folders: dict[str, str] = field(default_factory=dict)
    """Each top-level folder that was read -> the label it holds."""

    def counts(self) -> dict[str, int]:
        """Images per label, every label present (0 when it has none), in label order."""
        counts = dict.fromkeys(LABELS, 0)
        for image in self.images:
            counts[image.label] += 1
        return counts

    def paths(self) -> list[Path]:
        return [image.path for image in self.images]

    def labels(self) -> list[str]:
        return [image.label for image in self.images]

    def relative(self, path: Path) -> str:
        """``path`` relative to the root, with ``/`` separators (how reports and JSON name an image)."""
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return Path(path).as_posix()

    def __len__(self) -> int:
        return len(self.images)


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _labels_text() -> str:
    return ", ".join(LABELS)


def _check_mapping(mapping: dict[str, str] | None) -> dict[str, str]:
    if not mapping:
        return {}
    if not isinstance(mapping, dict):
        raise InputError("[eval.labels] must be a table of folder name = label",
                         hint=f"For example, in rcyc.toml: [eval.labels] {MAPPING_EXAMPLE}")
    checked = {}
    for folder, label in mapping.items():
        if not isinstance(folder, str) or not folder or "/" in folder or "\\" in folder or folder.startswith("."):
            raise InputError(f"[eval.labels]: {folder!r} is not a top-level folder name",
                             hint="Map a folder directly inside the data directory, e.g. " + MAPPING_EXAMPLE)
        if label not in LABELS:
            raise InputError(f"[eval.labels]: {folder} = {label!r} is not one of the labels ({_labels_text()})",
                             hint=f"Map each folder to one of: {_labels_text()}, e.g. {MAPPING_EXAMPLE}")
        checked[folder] = label
    return checked


def _sort_key(path: Path, root: Path) -> tuple[str, ...]:
    return path.relative_to(root).parts


def load_dataset(root: Path, mapping: dict[str, str] | None = None) -> Dataset:
    """Read the labelled folder at ``root``.

    ``mapping`` is the ``[eval.labels]`` table (top-level folder name -> label); a folder named after a
    label needs no entry. Raises :class:`InputError` when ``root`` is not a directory, a top-level
    folder is neither a label nor mapped (the message lists the labels), a mapping value is not a
    label, or no image is found.
    """
    root = Path(root)
    folders_map = _check_mapping(mapping)
    try:
        root_stat = root.stat()
    except FileNotFoundError:
        raise InputError(f"{shown(root)} does not exist", hint="Give a folder with one sub-folder per label.") from None
    except OSError as exc:
        raise InputError(f"cannot read {shown(root)}: {exc.strerror}", hint="Give a folder with one sub-folder per label.") from None
    if not stat.S_ISDIR(root_stat.st_mode):
        raise InputError(f"{shown(root)} is not a directory", hint="Give a folder with one sub-folder per label.")

    images: list[LabelledImage] = []
    skipped: list[tuple[Path, str]] = []
    folders: dict[str, str] = {}
    unknown: list[str] = []
    visited: set[tuple[int, int]] = {(root_stat.st_dev, root_stat.st_ino)}
    inside = _inside(root)

    for entry in _entries(root):
        if entry.name.startswith("."):
            continue
        if not inside(entry):
            skipped.append((Path(entry.path), OUTSIDE))
            continue
        kind, _ = _kind(entry)
        if kind != "dir":
            # Notes, scripts and the like beside the label folders are not part of the data; an image
            # here has no label, so say so rather than drop it silently.
            if is_image_name(entry.name):
                skipped.append((Path(entry.path), "not inside a label folder"))
            continue
        label = folders_map.get(entry.name, entry.name if entry.name in LABELS else None)
        if label is None:
            unknown.append(entry.name)
            continue
        folders[entry.name] = label
        _walk(Path(entry.path), label, images, skipped, visited, inside)

    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        raise InputError(
            f"{root}: folder{'s' if len(unknown) > 1 else ''} {names} {'are' if len(unknown) > 1 else 'is'} "
            f"not a label; the folders must be named after the labels: {_labels_text()}",
            hint=f"Rename it, or map it in rcyc.toml under [eval.labels], e.g. {MAPPING_EXAMPLE}")
    if not images:
        raise InputError(f"no images in {shown(root)}",
                         hint=f"Put images in {shown(root)}/<label>/ with <label> one of: {_labels_text()} "
                              f"(extensions: {', '.join(sorted(IMAGE_EXTENSIONS))}).")
    images.sort(key=lambda image: _sort_key(image.path, root))
    skipped.sort(key=lambda item: _sort_key(item[0], root))
    return Dataset(root=root, images=images, skipped=skipped, folders=folders)


OUTSIDE = "a link out of the data folder (never followed)"


def _inside(root: Path):
    """A test of whether an entry stays inside ``root`` once its links are followed."""
    real_root = os.path.realpath(root)

    def inside(entry: os.DirEntry) -> bool:
        if not entry.is_symlink():
            return True  # a plain entry of a folder inside the root (links were checked on the way down)
        real = os.path.realpath(entry.path)
        return real == real_root or real.startswith(real_root.rstrip("/") + "/")

    return inside


def _entries(directory: Path) -> list[os.DirEntry]:
    with os.scandir(directory) as scan:
        return sorted(scan, key=lambda entry: entry.name)


def _kind(entry: os.DirEntry) -> tuple[str, os.stat_result | None]:
    """('dir' | 'file' | 'other' | 'dangling' | 'unreadable', the followed stat) without raising."""
    try:
        st = entry.stat(follow_symlinks=True)
    except FileNotFoundError:
        return "dangling", None
    except OSError:
        return "unreadable", None
    if stat.S_ISDIR(st.st_mode):
        return "dir", st
    if stat.S_ISREG(st.st_mode):
        return "file", st
    return "other", st


def _walk(directory: Path, label: str, images: list[LabelledImage], skipped: list[tuple[Path, str]],
          visited: set[tuple[int, int]], inside) -> None:
    # An explicit stack, not recursion: a deep tree cannot exhaust Python's recursion limit.
    stack = [directory]
    while stack:
        current = stack.pop()
        try:
            current_stat = current.stat()
        except OSError as exc:
            skipped.append((current, f"unreadable folder ({exc.strerror})"))
            continue
        identity = (current_stat.st_dev, current_stat.st_ino)
        if identity in visited:
            skipped.append((current, "folder already read (a link back into the data)"))
            continue
        visited.add(identity)
        try:
            entries = _entries(current)
        except OSError as exc:
            skipped.append((current, f"unreadable folder ({exc.strerror})"))
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if not inside(entry):
                skipped.append((path, OUTSIDE))
                continue
            kind, st = _kind(entry)
            if kind == "dir":
                subfolders.append(path)
            elif not is_image_name(entry.name):
                skipped.append((path, "not an image file extension"))
            elif kind == "file":
                images.append(LabelledImage(path, label))
            elif kind == "dangling":
                skipped.append((path, "dangling symbolic link"))
            elif kind == "unreadable":
                skipped.append((path, "cannot be read"))
            else:
                skipped.append((path, f"not a regular file ({_file_type(st)})"))
        stack.extend(reversed(subfolders))


def _file_type(st: os.stat_result | None) -> str:
    if st is None:
        return "unknown"
    mode = st.st_mode
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"
