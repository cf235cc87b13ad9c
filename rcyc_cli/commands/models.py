"""rcyc models list / promote: model versions in the bucket and the current-model pointer."""

from __future__ import annotations

from pathlib import Path

import click

from ..exit_status import ExitStatus
from .options import bucket_option, region_option
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
@click.option("--min-per-class", type=click.IntRange(1), default=None,
              help="With --eval: evaluated images per class needed to promote [default: 20].")
@click.option("--force", is_flag=True, help="With --eval: promote even if the gate fails.")
@json_option
def models_promote(name, version, bucket, region, eval_dir, min_per_class, force):
    """Make NAME VERSION the current model (also a rollback): one write of the pointer."""
    from ..cloud import models as store
    with progress() as report:
        gate = None
        if eval_dir is not None:
            from ..evaluate.session import MIN_PER_CLASS, promotion_gate

            gate = promotion_gate(bucket, f"{name}/{version}", eval_dir, region, report, min_per_class or MIN_PER_CLASS)
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
