"""The training pipeline: split and scan rules, then a real run on generated drawings (train on one
seed, classify another seed's drawings with the packaged model through rcyc's own inference core), and
every way Ctrl-C can land."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rcyc_core.errors import InputError, PrerequisiteError
from rcyc_core.labels import LABELS
from tests.conftest import drawings, need

TRAIN_PER_LABEL = 16
EVAL_PER_LABEL = 12
EPOCHS = 20



def make_drawings(folder: Path, seed: int, per_label: int) -> list[tuple[Path, str]]:
    return drawings().write_folder(folder, per_label, seed, name="{seed}-{i}.jpg")


def need_training() -> None:
    from rcyc_cli.train import installed

    ok, why = installed()
    need(ok, f"the train extra ({why})")


# ------------------------------------------------------------------------- scan and split (no TF)


def _samples(per_label: dict[str, int]):
    from rcyc_cli.train.pipeline import Sample

    return [
        Sample(Path(f"{label}/{i}.jpg"), label, f"{label}-{i}".encode().hex().ljust(64, "0"))
        for label, n in per_label.items()
        for i in range(n)
    ]


def test_split_is_stratified_seeded_and_stable():
    from rcyc_cli.train.pipeline import Sample, split

    samples = _samples({label: 10 + 5 * i for i, label in enumerate(LABELS)})
    train, held = split(samples, 0.2, seed=3)
    assert {s.sha256 for s in train}.isdisjoint(s.sha256 for s in held)
    assert len(train) + len(held) == len(samples)
    for i, label in enumerate(LABELS):
        assert sum(s.label == label for s in held) == round((10 + 5 * i) * 0.2)
    reordered = split(list(reversed(samples)), 0.2, seed=3)[1]
    assert {s.sha256 for s in reordered} == {s.sha256 for s in held}  # names and order do not matter
    assert {s.sha256 for s in split(samples, 0.2, seed=4)[1]} != {s.sha256 for s in held}
    # Adding a photo per label keeps the earlier held-out choice, bar at most one image per label.
    extra = [Sample(Path(f"{label}/new.jpg"), label, f"new-{label}".encode().hex().ljust(64, "0")) for label in LABELS]
    held_more = {s.sha256 for s in split(samples + extra, 0.2, seed=3)[1]}
    assert len({s.sha256 for s in held} - held_more) <= len(LABELS)


def test_a_split_that_holds_out_nothing_is_refused_before_any_work(tmp_path, monkeypatch):
    """One image per label holds out none: no accuracy could be measured, so an error (exit 3), raised
    before the backbone or any feature is computed (it used to train, skip --report and exit 0)."""
    from rcyc_cli.train import pipeline

    monkeypatch.setattr(pipeline, "require", lambda: None)
    monkeypatch.setattr(pipeline, "backbone_tflite", lambda *a: pytest.fail("the backbone was prepared"))
    images = make_drawings(tmp_path / "data", seed=1, per_label=1)
    with pytest.raises(InputError, match="holds out none"):
        pipeline.train(images, tmp_path / "out", cache_root=tmp_path / "cache")
    assert not (tmp_path / "out").exists()


def test_split_refuses_a_label_without_images_and_bad_fractions():
    from rcyc_cli.train.pipeline import split

    with pytest.raises(InputError, match="no usable images for plastic_bottles"):
        split(_samples({label: 3 for label in LABELS[:4]}), 0.2, 0)
    with pytest.raises(InputError):
        split(_samples({label: 3 for label in LABELS}), 1.0, 0)
    train, held = split(_samples({label: 2 for label in LABELS}), 0.2, 0)
    assert len(held) == len(LABELS) and len(train) == len(LABELS)  # at least one of each on both sides


def test_scan_drops_duplicates_and_refuses_conflicts(tmp_path):
    from rcyc_cli.train.pipeline import scan

    a, b, c = tmp_path / "a.jpg", tmp_path / "b.jpg", tmp_path / "c.jpg"
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    c.write_bytes(b"other")
    samples, skipped, duplicates = scan([(a, "boxes"), (b, "boxes"), (c, "boxes"), (tmp_path, "boxes")])
    assert [s.path for s in samples] == [a, c] and duplicates == 1
    assert skipped == [{"path": str(tmp_path), "reason": "not a regular file"}]
    with pytest.raises(InputError, match="two labels"):
        scan([(a, "boxes"), (b, "soda_cans")])
    with pytest.raises(InputError, match="unknown label"):
        scan([(a, "cats")])


# ------------------------------------------------------------------------------- the real pipeline


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    need_training()
    root = tmp_path_factory.mktemp("train")
    return {
        "root": root,
        "cache": root / "cache",
        "train": make_drawings(root / "data", seed=1, per_label=TRAIN_PER_LABEL),
        "eval": make_drawings(root / "other-seed", seed=2, per_label=EVAL_PER_LABEL),
    }


def interrupt_at(where: str, at: int):
    """A progress callback that presses Ctrl-C when ``where`` reaches step ``at``."""

    def progress(stage, done, total, info):
        if stage == where and done == at:
            raise KeyboardInterrupt

    return progress


def leftovers(out: Path) -> list[str]:
    """What sits beside ``out`` under its name: the model directory or any partial directory."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith((out.name, f".{out.name}")))


@pytest.fixture(scope="module")
def trained(workspace):
    """Two runs stopped by Ctrl-C (in the features, in the export), then the full run into the same
    directory: the rerun after an interrupted one (exports are the slow part, so they are shared)."""
    from rcyc_cli.train import train

    out = workspace["root"] / "model"
    common = dict(name="drawings", version="t1", seed=1, epochs=EPOCHS, cache_root=workspace["cache"])
    after_interrupt = {}
    for where, at in (("features", 3), ("export", 1)):
        with pytest.raises(KeyboardInterrupt):
            train(workspace["train"], out, progress=interrupt_at(where, at), **common)
        after_interrupt[where] = leftovers(out)
    stages = []
    summary = train(workspace["train"], out, progress=lambda stage, *_: stages.append(stage), **common)
    return summary, stages, after_interrupt


@pytest.mark.keras
@pytest.mark.slow  # a real training (shared by the module): about 40 s in all
def test_trained_model_classifies_another_seeds_drawings(workspace, trained):
    from rcyc_core import backends
    from rcyc_core.inference import Classifier, Item
    from rcyc_core.manifest import Manifest

    summary, stages, _ = trained
    out = workspace["root"] / "model"
    manifest = Manifest.load(out)
    assert (manifest.name, manifest.version, manifest.layout) == ("drawings", "t1", "softmax")
    assert (manifest.input.width, manifest.input.height) == (224, 224)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.h5", "model.tflite", "training.json"]
    assert summary["manifest"] == manifest.summary()
    assert summary["interrupted"] is None
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == ["scan", "backbone", "features", "head", "export"]

    images = summary["images"]
    assert images["given"] == images["used"] == TRAIN_PER_LABEL * len(LABELS)
    assert images["held_out"] == len(summary["held_out_images"]) == round(TRAIN_PER_LABEL * 0.2) * len(LABELS)
    assert images["train"] + images["held_out"] == images["used"]
    train_paths = {str(p) for p, _ in workspace["train"]}
    assert all(path in train_paths for path, _ in summary["held_out_images"])
    assert summary["val_accuracy"] is not None and summary["val_accuracy"] >= 0.9

    classifier = Classifier(manifest, backends.load(manifest, out, "litert"))
    items = [Item(i, None, str(path), path.read_bytes()) for i, (path, _) in enumerate(workspace["eval"])]
    results, errors = classifier.classify(items)
    assert not errors
    accuracy = np.mean([r["label"] == label for r, (_, label) in zip(results, workspace["eval"])])
    assert accuracy >= 0.95, accuracy


@pytest.mark.keras
@pytest.mark.slow  # a real training (shared by the module): about 40 s in all
def test_features_are_cached_and_training_is_deterministic(workspace, trained):
    from rcyc_cli.train import pipeline

    summary, _, _ = trained
    samples, _, _ = pipeline.scan(workspace["train"])
    features, skipped, stats = pipeline.extract_features(samples, workspace["cache"])
    assert not skipped and stats == {"computed": 0, "cached": len(samples), "backbone_cached": True}
    train, held = pipeline.split(samples, 0.2, seed=1)
    index = {label: i for i, label in enumerate(LABELS)}

    def xy(group):
        return np.stack([features[s.sha256] for s in group]), np.array([index[s.label] for s in group])

    head = pipeline.train_head(*xy(train), *xy(held), epochs=EPOCHS, seed=1)
    assert head["best_epoch"] == summary["head"]["best_epoch"]
    assert head["history"] == summary["head"]["history"]


@pytest.mark.keras
@pytest.mark.slow  # a real training (shared by the module): about 40 s in all
def test_ctrl_c_leaves_no_model_and_no_partial_directory_and_a_rerun_works(workspace, trained):
    from rcyc_cli.train import train
    from rcyc_core import backends
    from rcyc_core.manifest import Manifest

    _, _, after_interrupt = trained
    out = workspace["root"] / "model"
    assert after_interrupt == {"features": [], "export": []}
    assert leftovers(out) == [out.name]  # the rerun: complete, and nothing else beside it
    manifest = Manifest.load(out)
    backends.load(manifest, out, "litert")  # every file present and matching its sha256
    # A published model is never overwritten (checked before any work starts).
    with pytest.raises(InputError, match="already exists"):
        train(workspace["train"], out, cache_root=workspace["cache"])
    assert Manifest.load(out) == manifest


@pytest.mark.keras
@pytest.mark.slow  # a real training (shared by the module): about 40 s in all
def test_ctrl_c_or_sigterm_in_the_head_epochs_exports_nothing(workspace, trained, monkeypatch):
    """README: an interrupted command exits 130 / 143; a model exported from a stopped training would be
    a quiet half answer (it used to be exported and the command exited 0)."""
    from rcyc_cli.main import Terminated
    from rcyc_cli.train import pipeline

    exported = []
    monkeypatch.setattr(pipeline, "export", lambda *args, **kwargs: exported.append(args))
    out = workspace["root"] / "stopped"
    for signal_like in (KeyboardInterrupt, lambda: Terminated(15)):
        def progress(stage, done, total, info, raise_it=signal_like):
            if stage == "head" and done == 4:
                raise raise_it()

        with pytest.raises(KeyboardInterrupt):
            pipeline.train(workspace["train"], out, seed=1, epochs=EPOCHS, cache_root=workspace["cache"], progress=progress)
    assert exported == [] and leftovers(out) == []


@pytest.mark.keras
@pytest.mark.slow  # a real training (shared by the module): about 40 s in all
def test_fine_tune_trains_only_the_top_blocks(workspace, trained):
    from rcyc_cli.train import backbone, pipeline

    samples, _, _ = pipeline.scan(workspace["train"][: 2 * len(LABELS)])
    train, held = samples[: len(LABELS)], samples[len(LABELS) :]
    rng = np.random.default_rng(0)
    model = backbone.build_classifier(rng.normal(0, 0.01, (1280, 5)).astype(np.float32), np.zeros(5, np.float32))
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers}
    tuned = pipeline.fine_tune_model(model, train, held, epochs=1, seed=0)
    assert tuned["epochs_run"] == 1 and tuned["trainable_layers"] > 0
    after = {layer.name: layer.get_weights() for layer in model.layers}
    for name in ("stem_conv", "stem_bn", "block12_project_conv", "block15_project_bn", "head_bn"):
        assert all(np.array_equal(a, b) for a, b in zip(before[name], after[name])), name
    if tuned["best_epoch"] == 1:  # the epoch was kept: the top blocks moved
        assert not all(np.array_equal(a, b) for a, b in zip(before["block15_project_conv"], after["block15_project_conv"]))


def test_missing_extra_is_a_prerequisite_error(monkeypatch, tmp_path):
    from rcyc_cli.train import train, weights

    monkeypatch.setattr(weights, "MODULE", "rcyc_no_such_weights_package")
    with pytest.raises(PrerequisiteError, match="not installed"):
        train([(tmp_path / "x.jpg", "boxes")], tmp_path / "out")
    assert not (tmp_path / "out").exists()
