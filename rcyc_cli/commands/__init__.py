"""The commands: each module declares its options, calls one library function and renders the result."""

from __future__ import annotations


def all_commands() -> list:
    from .build import build
    from .classify import classify
    from .deploy import deploy
    from .doctor import doctor
    from .eval import eval_command
    from .event import event
    from .invoke import invoke
    from .invoke_local import invoke_local
    from .local import local
    from .models import models
    from .predict import predict
    from .rie import rie
    from .train import train
    from .upload import upload_image, upload_model

    return [predict, invoke_local, event, eval_command, classify, local, build, rie, doctor, upload_model, upload_image, deploy, invoke, models, train]
