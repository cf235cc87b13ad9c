"""The result contract is code: the README's example and what predict prints parse into the types of
``rcyc_core.results`` and back unchanged, with no key the types lack and none missing."""

from __future__ import annotations

import json
import re
from dataclasses import fields

from rcyc_core.results import ModelRef, RecordError, Response, Result, Skipped
from tests.cli import run
from tests.conftest import IMAGES, ROOT, bad_images

PARTS = {"results": Result, "errors": RecordError, "skipped": Skipped}


def names(cls) -> set[str]:
    return {f.name for f in fields(cls)}


def assert_is_the_contract(response: dict) -> None:
    contract = {key: response[key] for key in names(Response)}
    assert Response.from_json(response).to_json() == contract
    for part, cls in PARTS.items():
        for entry in response[part]:
            assert set(entry) == names(cls), (part, entry)
    if response["model"] is not None:
        assert set(response["model"]) == names(ModelRef)


def test_the_readme_example_is_the_contract():
    section = (ROOT / "README.md").read_text().split("## Result contract", 1)[1]
    example = json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))
    assert set(example) == names(Response)
    assert all(example[part] for part in PARTS)  # the example shows one entry of each kind
    assert_is_the_contract(example)


def test_what_predict_prints_is_the_contract():
    result = run("predict", "--json", IMAGES / "boxes" / "boxes_0.jpg", *bad_images()[:2])
    response = json.loads(result.stdout)
    assert response["results"] and response["errors"]
    assert_is_the_contract(response)


def test_the_local_types_round_trip_through_their_json(tmp_path):
    from rcyc_cli.function_spec import FunctionSpec
    from rcyc_cli.local.answer import RunInfo
    from rcyc_cli.local.stack.client import StackConfig, StackState

    spec = FunctionSpec(flavor="keras", ca_bundle=tmp_path / "ca.pem", memory=2048, runtime="process", architecture="arm64")
    assert spec.ca_bundle.is_absolute() and FunctionSpec.from_json(spec.to_json()) == spec
    assert FunctionSpec(base_image=None).base_image == FunctionSpec().base_image  # None is the default image
    config = StackConfig(function=spec, instances=3, bucket="b", function_name="f", idle_seconds=60.0)
    flat = config.to_json()
    assert flat["memory"] == 2048 and flat["ca_bundle"] == str(tmp_path / "ca.pem") and "function" not in flat
    assert StackConfig.from_json(flat) == config
    state = StackState(pid=1, endpoint="http://127.0.0.1:1", s3_endpoint="http://127.0.0.1:2", bucket="b", config=config,
                       runtime="process", started_at=0.0, owner="o", rie_path="/rie", model={"name": "m"}, instance_pids=[2])
    assert StackState.from_json(state.to_json()) == state and state.to_json()["config"] == flat
    info = RunInfo("process", "b", "http://127.0.0.1:2", {"name": "m"})
    assert "prefix" not in info.to_json() and RunInfo.from_json(info.to_json()) == info
    assert RunInfo.from_json({**info.to_json(), "prefix": "runs/x/"}).prefix == "runs/x/"
