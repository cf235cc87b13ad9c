"""rcyc models list / promote: model versions in the bucket and the current-model pointer."""

from __future__ import annotations

from pathlib import Path

import click

from ..exit_status import ExitStatus
from .options import bucket_option, json_option, region_option


@click.group()
def models():
    """Model versions in the bucket and the current-model pointer."""



@models.command("list")
@bucket_option
@region_option
@json_option
def models_list(bucket, region, as_json):
    """List uploaded model versions; mark the current one."""
    from ..cloud import models as store
    from ..render import console, tables

    listing = store.list_models(bucket, region)
    console.print_json(listing) if as_json else tables.render_models(listing)


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
@click.pass_context
def models_promote(ctx, name, version, bucket, region, eval_dir, min_per_class, force, as_json):
    """Make NAME VERSION the current model (also a rollback): one write of the pointer."""
    from ..cloud import models as store
    from ..render import console
    from ..render.progress import rich_reporter

    with rich_reporter(quiet=as_json) as report:
        gate = None
        if eval_dir is not None:
            from ..evaluate.session import MIN_PER_CLASS, gate_figures, promotion_gate

            gate = promotion_gate(bucket, f"{name}/{version}", eval_dir, region, report, min_per_class or MIN_PER_CLASS)
            if gate["failed"] and not force:
                if as_json:
                    console.print_json({"promoted": False, "gate": gate})
                else:
                    for line in gate_figures(gate):
                        console.out.print(line)
                    for reason in gate["reasons"]:
                        console.error(f"not promoted: {reason}", "Improve the model, or pass --force to promote it anyway.")
                ctx.exit(ExitStatus.GATE_FAILED)
        result = store.promote_model(bucket, name, version, region, report)
    if gate is not None:
        result["gate"] = gate
    if as_json:
        console.print_json(result)
    else:
        before = result["previous"]
        was = f" (was {before.get('name')} {before.get('version')})" if before else ""
        if gate is not None:
            for line in gate_figures(gate):
                console.out.print(line)
        console.out.print(f"current model: {name} {version}{was}")
