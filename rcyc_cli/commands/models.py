"""rcyc models list / promote: model versions in the bucket and the current-model pointer."""

from __future__ import annotations

from pathlib import Path

import click

from ..exit_status import ExitStatus
from .options import bucket_option, min_per_class_needs, min_per_class_option, region_option
from .output import emit, json_option, progress


@click.group()
def models():
    """Model versions in the bucket and the current-model pointer."""



@models.command("list")
@bucket_option
@region_option
@json_option
def models_list(bucket, region):
    """List uploaded model versions; mark the current one."""
    from ..cloud import models as store
    from ..render import tables

    emit(store.list_models(bucket, region), tables.render_models)


@models.command("promote")
@click.argument("name")
@click.argument("version")
@bucket_option
@region_option
@click.option("--eval", "eval_dir", type=click.Path(path_type=Path),
              help="First evaluate it and the current model on these labelled photos; refuse (exit 9) if it is worse.")
@min_per_class_option
@click.option("--force", is_flag=True, help="With --eval: promote even if the gate fails.")
@json_option
def models_promote(name, version, bucket, region, eval_dir, min_per_class, force):
    """Make NAME VERSION the current model (also a rollback): one write of the pointer."""
    min_per_class_needs("--eval", eval_dir is not None)
    from ..cloud import models as store
    with progress() as report:
        gate = None
        if eval_dir is not None:
            from ..evaluate.session import promotion_gate

            gate = promotion_gate(bucket, f"{name}/{version}", eval_dir, region, report, min_per_class)
            if gate["failed"] and not force:
                emit({"promoted": False, "gate": gate}, _render_refusal, ExitStatus.GATE_FAILED)
        result = store.promote_model(bucket, name, version, region, report)
    if gate is not None:
        result["gate"] = gate
    emit(result, lambda promoted: _render_promotion(promoted, name, version))


def _render_refusal(payload: dict) -> None:
    from ..evaluate.session import gate_figures
    from ..render import console

    for line in gate_figures(payload["gate"]):
        console.out.print(line)
    for reason in payload["gate"]["reasons"]:
        console.error(f"not promoted: {reason}", "Improve the model, or pass --force to promote it anyway.")


def _render_promotion(result: dict, name: str, version: str) -> None:
    from ..evaluate.session import gate_figures
    from ..render import console

    before, gate = result["previous"], result.get("gate")
    was = f" (was {before.get('name')} {before.get('version')})" if before else ""
    for line in gate_figures(gate) if gate is not None else []:
        console.out.print(line)
    console.out.print(f"current model: {name} {version}{was}")


@models.command("import")
@click.argument("source")
@click.option("--name", required=True, help="Model name in the bucket.")
@click.option("--version", "version", help="Version (default: the model's own, a hash of its .h5).")
@bucket_option
@region_option
@click.option("--promote", is_flag=True, help="Then make it current if the --eval gate passes (needs --eval).")
@click.option("--eval", "eval_dir", type=click.Path(path_type=Path),
              help="With --promote: labelled photos to compare it with the current model on; worse: exit 9, not promoted.")
@min_per_class_option
@json_option
def models_import(source, name, version, bucket, region, promote, eval_dir, min_per_class):
    """Bring a trained model in as a new version, without moving the pointer: SOURCE is a training job's
    s3://…/model.tar.gz (or a local .tar.gz), a manifest directory or a .h5. It is unpacked safely,
    checked by behaviour and parity, and uploaded as models/NAME/VERSION/."""
    from ..cloud.imports import import_model

    if promote != (eval_dir is not None):
        raise click.UsageError("--promote and --eval go together: a trained model becomes current only through the gate")
    min_per_class_needs("--promote --eval", promote)
    with progress() as report:
        result = import_model(source, bucket, name, version, region, report)
        if eval_dir is not None:
            from ..evaluate.session import gate_import

            gate_import(result, bucket, eval_dir, region, report, min_per_class)
    failed = result["gate"] is not None and result["gate"]["failed"]
    emit(result, lambda imported: _render_import(imported, bucket), ExitStatus.GATE_FAILED if failed else ExitStatus.OK)


def _render_import(result: dict, bucket: str) -> None:
    from ..render import console

    gate = result["gate"]
    console.out.print(f"imported {result['name']} {result['version']} to s3://{bucket}/{result['manifest'].rsplit('/', 1)[0]}/"
                      + ("" if result["uploaded"] else " (already there with this very content)"))
    if gate is not None and gate["images"]:
        console.out.print(f"eval on {gate['images']} images: accuracy {gate['accuracy']:.1%} "
                          f"(current {gate['current_accuracy']:.1%}), McNemar p = {gate['p_value']:.3g}")
    if result["promoted"]:
        console.out.print(f"current model: {result['name']} {result['version']}")
    elif gate is None:
        console.out.print(f"[dim]next: rcyc models promote {result['name']} {result['version']} --eval DATA_DIR[/dim]")
    else:
        for reason in gate["reasons"]:
            console.error(f"not promoted: {reason}", "Improve the model; it stays uploaded, and the current model stays live.")
