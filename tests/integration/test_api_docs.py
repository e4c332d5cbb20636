"""The documents generated from api/ describe the registry the library really has: the OpenAPI
document is valid OpenAPI 3.1 (openapi-spec-validator) with one path per operation, and docs/api.md
lists every operation. (tools/gen_api/gen_api.py --check, run by ctest, holds them to api/.)"""
import json
import pathlib

from openapi_spec_validator import validate

from conftest import ROOT, hsdk


def registry():
    return {op["name"]: op for op in json.loads(hsdk("ops", "--json").stdout)["operations"]}


def test_the_openapi_document_is_valid_and_covers_every_operation():
    doc = json.loads((ROOT / "api" / "openapi.json").read_text())
    validate(doc)
    assert doc["openapi"].startswith("3.")
    paths = {p.removeprefix("/v1/ops/") for p in doc["paths"]}
    assert paths == set(registry())
    for name, op in registry().items():
        post = doc["paths"][f"/v1/ops/{name}"]["post"]
        assert post["summary"] == op["summary"]


def test_api_md_lists_every_operation_with_its_errors():
    text = (ROOT / "docs" / "api.md").read_text()
    for name, op in registry().items():
        assert f"`{name}`" in text or f"## {name}" in text, name
        for e in op["errors"]:
            assert f"`{e}`" in text
