"""SARIF output: valid against the official 2.1.0 schema, and acceptable to GitHub code scanning.

The schema alone does not catch what makes an upload useless on GitHub (absolute paths, a
result without a level or a rule, no fingerprint), so those are checked here one by one.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import sarif_om as om
from click.testing import CliRunner

from dmalint.cli import main
from dmalint.contracts.loader import load_registry
from dmalint.engine.state import Step
from dmalint.findings import Finding
from dmalint.report import sarif, sarif_json
from dmalint.runner import RunResult, run
from snippets import LEAK_C, UNCHECKED_C

SCHEMA_PATH = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"



CLEAN_C = UNCHECKED_C.replace(
    "\tdesc->addr = addr;", "\tif (dma_mapping_error(dev, addr))\n\t\treturn -ENOMEM;\n\tdesc->addr = addr;")


@pytest.fixture(scope="module")
def schema() -> dict:
    data = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft4Validator.check_schema(data)
    return data


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small driver directory; the working directory is its root, as in a CI checkout."""
    foo = tmp_path / "drivers" / "foo"
    foo.mkdir(parents=True)
    (foo / "bad.c").write_text(UNCHECKED_C)
    (foo / "leak.c").write_text(LEAK_C)
    (foo / "good.c").write_text(CLEAN_C)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def check_sarif(*args: str) -> tuple[int, dict, str]:
    """Run `dmalint check --format sarif` in-process: (exit code, parsed log, raw stdout)."""
    res = CliRunner().invoke(main, ["check", "--format", "sarif", "-j", "1", *args])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, json.loads(res.stdout), res.stdout


def only_run(log: dict) -> dict:
    assert len(log["runs"]) == 1
    return log["runs"][0]


def result_for(log: dict, rule_id: str) -> dict:
    matches = [r for r in only_run(log)["results"] if r["ruleId"] == rule_id]
    assert len(matches) == 1, matches
    return matches[0]


def artifact_locations(run_: dict) -> list[dict]:
    """Every artifactLocation of results: primary, code-flow steps and related locations."""
    out = []
    for r in run_["results"]:
        for loc in r.get("locations", []) + r.get("relatedLocations", []):
            out.append(loc["physicalLocation"]["artifactLocation"])
        for flow in r.get("codeFlows", []):
            for tf in flow["threadFlows"]:
                out.extend(s["location"]["physicalLocation"]["artifactLocation"]
                           for s in tf["locations"])
    return out


def github_problems(log: dict) -> list[str]:
    """What GitHub code scanning rejects or mishandles although the schema allows it."""
    problems = []
    if log.get("version") != "2.1.0":
        problems.append("version is not 2.1.0")
    for run_ in log["runs"]:
        rules = run_["tool"]["driver"].get("rules", [])
        ids = [rule["id"] for rule in rules]
        if len(run_.get("results", [])) > sarif.MAX_RESULTS:
            problems.append("more than 25,000 results in a run")
        for i, r in enumerate(run_.get("results", [])):
            if not r.get("message", {}).get("text"):
                problems.append(f"result {i}: no message.text")
            if r.get("level") not in ("error", "warning", "note", "none"):
                problems.append(f"result {i}: no explicit level")
            if r.get("ruleId") not in ids:
                problems.append(f"result {i}: ruleId {r.get('ruleId')} not in driver.rules")
            elif ids[r.get("ruleIndex", -1)] != r["ruleId"]:
                problems.append(f"result {i}: ruleIndex does not point at its rule")
            if not r.get("partialFingerprints"):
                problems.append(f"result {i}: no partialFingerprints")
        for art in artifact_locations(run_):
            uri = art["uri"]
            if urlsplit(uri).scheme or uri.startswith("/") or "\\" in uri:
                problems.append(f"{uri}: not a relative POSIX URI")
            if art.get("uriBaseId") not in run_.get("originalUriBaseIds", {}):
                problems.append(f"{uri}: uriBaseId not declared in originalUriBaseIds")
    return problems


def test_vendored_schema_is_the_official_errata01_schema(schema):
    assert schema["id"] == (
        "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json")
    assert schema["properties"]["version"]["enum"] == ["2.1.0"]


def test_output_validates_against_sarif_2_1_0_schema(tree, schema):
    code, log, _ = check_sarif("drivers", "missing.c")
    jsonschema.Draft4Validator(schema).validate(log)
    assert code == 2  # missing.c could not be analysed
    assert log["version"] == "2.1.0"
    assert log["$schema"] == schema["id"]


def test_output_passes_github_checks_beyond_the_schema(tree):
    _, log, _ = check_sarif("drivers")
    assert github_problems(log) == []


def test_checks_catch_broken_logs(tree, schema):
    """The schema and the GitHub checks are not vacuous: a damaged log fails both."""
    _, log, _ = check_sarif("drivers")
    r = result_for(log, "DMA001")
    r["locations"][0]["physicalLocation"]["region"]["startLine"] = 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema).validate(log)
    del r["level"]
    r["ruleId"] = "DMA999"
    r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] = "/abs/bad.c"
    del r["partialFingerprints"]
    assert github_problems(log) == [
        "result 0: no explicit level",
        "result 0: ruleId DMA999 not in driver.rules",
        "result 0: no partialFingerprints",
        "/abs/bad.c: not a relative POSIX URI",
    ]


def test_unchecked_mapping_result_fields(tree):
    code, log, _ = check_sarif("drivers")
    assert code == 1
    r = result_for(log, "DMA001")
    assert r["level"] == "error"
    assert r["message"]["text"] == ("'addr' from dma_map_single() at line 9 is stored in "
                                    "'desc->addr' without a dma_mapping_error() check")
    phys = r["locations"][0]["physicalLocation"]
    assert phys["artifactLocation"] == {"uri": "drivers/foo/bad.c", "uriBaseId": "%SRCROOT%"}
    assert phys["region"] == {"startLine": 10, "startColumn": 2}
    rules = only_run(log)["tool"]["driver"]["rules"]
    assert rules[r["ruleIndex"]]["id"] == "DMA001"
    assert r["properties"] == {"function": "foo_xmit"}


def test_fingerprint_is_the_findings_line_independent_fingerprint(tree):
    _, log, _ = check_sarif("drivers")
    finding = next(f for f in run(["drivers"], 1).findings if f.code == "DMA001")
    r = result_for(log, "DMA001")
    assert r["partialFingerprints"] == {"dmalint/v1": finding.fingerprint}
    # Lines inserted above the bug move it, but the fingerprint stays.
    Path("drivers/foo/bad.c").write_text("/* a new header comment */\n\n" + UNCHECKED_C)
    _, moved, _ = check_sarif("drivers")
    r2 = result_for(moved, "DMA001")
    assert r2["locations"][0]["physicalLocation"]["region"]["startLine"] == 12
    assert r2["partialFingerprints"] == r["partialFingerprints"]


def test_trace_becomes_a_thread_flow(tree):
    _, log, _ = check_sarif("drivers")
    flows = result_for(log, "DMA001")["codeFlows"]
    assert len(flows) == 1 and len(flows[0]["threadFlows"]) == 1
    steps = flows[0]["threadFlows"][0]["locations"]
    assert [(s["location"]["physicalLocation"]["region"]["startLine"], s["kinds"],
             s["location"]["message"]["text"]) for s in steps] == [
        (6, ["enter"], "enter foo_xmit()"),
        (9, ["acquire"], "dma_map_single() acquires a DMA region"),
    ]
    assert all(s["location"]["physicalLocation"]["artifactLocation"]["uri"] == "drivers/foo/bad.c"
               for s in steps)


def test_related_locations_have_ids_lines_and_messages(tree):
    _, log, _ = check_sarif("drivers")
    related = result_for(log, "DMA001")["relatedLocations"]
    assert related == [{
        "id": 1,
        "message": {"text": "dma_map_single() acquires the region here"},
        "physicalLocation": {
            "artifactLocation": {"uri": "drivers/foo/bad.c", "uriBaseId": "%SRCROOT%"},
            "region": {"startLine": 9},
        },
    }]


def test_warning_level_survives_serialization(tree):
    _, log, raw = check_sarif("drivers")
    r = result_for(log, "DMA003")
    assert r["level"] == "warning"
    assert r["locations"][0]["physicalLocation"]["region"] == {"startLine": 13, "startColumn": 10}
    dma003 = next(x for x in only_run(log)["tool"]["driver"]["rules"] if x["id"] == "DMA003")
    assert dma003["defaultConfiguration"] == {"level": "warning"}
    assert '"level": "warning"' in raw


def test_serializer_writes_default_level_but_drops_other_defaults():
    out = sarif_json.to_jsonable(om.Result(message=om.Message(text="m"), level="warning"))
    assert out == {"level": "warning", "message": {"text": "m"}}  # no kind, rank, ruleIndex
    note = sarif_json.to_jsonable(om.Notification(message=om.Message(text="n"), level="warning"))
    assert note["level"] == "warning"


def test_driver_lists_every_registry_rule_with_docs(tree):
    _, log, _ = check_sarif("drivers")
    driver = only_run(log)["tool"]["driver"]
    assert driver["name"] == "dmalint"
    assert driver["version"]
    assert urlsplit(driver["informationUri"]).scheme == "https"
    registry = load_registry().diagnostics
    assert [r["id"] for r in driver["rules"]] == [d.code for d in registry]
    for rule, diag in zip(driver["rules"], registry):
        assert rule["name"] == diag.name
        assert rule["shortDescription"] == {"text": diag.summary}
        assert rule["fullDescription"]["text"] == " ".join(diag.doc.what.split())
        for title in ("What it checks", "Why it is a bug", "Example", "Fix"):
            assert title in rule["help"]["text"]
            assert f"## {title}" in rule["help"]["markdown"]
        assert rule["helpUri"] == ("https://github.com/dmalint/dmalint/blob/main/docs/rules.md#"
                                   + diag.code.lower())
        props = rule["properties"]
        assert props["precision"] == diag.confidence
        assert props["problem.severity"] == {"error": "error", "warning": "warning",
                                             "note": "recommendation"}[diag.severity]
        assert set(diag.tags) | {diag.group} <= set(props["tags"])
        assert len(props["tags"]) == len(set(props["tags"]))


def test_rule_properties_for_dma001_and_dma003(tree):
    _, log, _ = check_sarif("drivers")
    rules = {r["id"]: r for r in only_run(log)["tool"]["driver"]["rules"]}
    assert rules["DMA001"]["properties"] == {
        "precision": "high", "problem.severity": "error", "security-severity": "7.0",
        "tags": ["correctness", "dma-debug", "streaming", "security"]}
    assert rules["DMA003"]["properties"]["precision"] == "medium"
    assert rules["DMA003"]["properties"]["security-severity"] == "4.0"
    assert "```c\naddr = dma_map_single(dev, skb->data, len, DMA_TO_DEVICE);" in \
        rules["DMA001"]["help"]["markdown"]


def test_original_uri_base_id_is_the_root_as_a_directory_uri(tree):
    _, log, _ = check_sarif("drivers")
    base = only_run(log)["originalUriBaseIds"]["%SRCROOT%"]["uri"]
    assert base == Path(os.getcwd()).as_uri() + "/"
    assert base.startswith("file:///") and base.endswith("/")


def test_uri_is_percent_encoded(tree):
    (tree / "drivers" / "foo" / "my driver#2.c").write_text(UNCHECKED_C)
    _, log, _ = check_sarif("drivers/foo/my driver#2.c")
    art = result_for(log, "DMA001")["locations"][0]["physicalLocation"]["artifactLocation"]
    assert art == {"uri": "drivers/foo/my%20driver%232.c", "uriBaseId": "%SRCROOT%"}


def test_root_option_makes_paths_relative_to_another_directory(tree):
    result = run([str(tree / "drivers" / "foo" / "bad.c")], 1)
    buf = io.StringIO()
    sarif.report(result, buf, root=str(tree / "drivers"))
    r = result_for(json.loads(buf.getvalue()), "DMA001")
    art = r["locations"][0]["physicalLocation"]["artifactLocation"]
    assert art == {"uri": "foo/bad.c", "uriBaseId": "%SRCROOT%"}


def test_path_outside_root_is_an_absolute_file_uri(tree, schema):
    result = run(["drivers/foo/bad.c"], 1)
    elsewhere = tree / "elsewhere"
    elsewhere.mkdir()
    buf = io.StringIO()
    sarif.report(result, buf, root=str(elsewhere))
    log = json.loads(buf.getvalue())
    jsonschema.Draft4Validator(schema).validate(log)
    art = result_for(log, "DMA001")["locations"][0]["physicalLocation"]["artifactLocation"]
    assert art == {"uri": (tree / "drivers" / "foo" / "bad.c").resolve().as_uri()}


def test_file_not_analysed_is_an_error_notification(tree):
    code, log, _ = check_sarif("drivers/foo/good.c", "missing.c")
    assert code == 2
    inv = only_run(log)["invocations"]
    assert inv == [{
        "executionSuccessful": False,
        "toolExecutionNotifications": [{
            "level": "error",
            "message": {"text": "missing.c: no such file or directory"},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": "missing.c", "uriBaseId": "%SRCROOT%"}}}],
        }],
    }]
    assert only_run(log)["results"] == []


def test_clean_run_has_empty_results_and_successful_invocation(tree, schema):
    code, log, _ = check_sarif("drivers/foo/good.c")
    assert code == 0
    jsonschema.Draft4Validator(schema).validate(log)
    assert only_run(log)["results"] == []
    assert only_run(log)["invocations"] == [{"executionSuccessful": True}]


def _finding(i: int, severity: str, trace: tuple = (), **kw) -> Finding:
    return Finding(path="drivers/foo/bad.c", line=10, column=2, code="DMA001",
                   name="unchecked-dma-mapping", severity=severity, confidence="high",
                   message=f"finding {i}", function="f", trace=trace, fingerprint=f"fp{i}", **kw)


def test_result_count_is_capped_at_github_limit_keeping_errors(tree):
    findings = [_finding(i, "warning") for i in range(sarif.MAX_RESULTS)]
    findings += [_finding(sarif.MAX_RESULTS + i, "error") for i in range(3)]
    log = sarif_json.to_jsonable(sarif.build_log(RunResult(findings=findings)))
    results = only_run(log)["results"]
    assert len(results) == 25_000
    assert [r["message"]["text"] for r in results[-3:]] == ["finding 25000", "finding 25001",
                                                            "finding 25002"]
    assert results[-4]["message"]["text"] == "finding 24996"  # the last 3 warnings gave way
    note = only_run(log)["invocations"][0]["toolExecutionNotifications"]
    assert note == [{"level": "warning", "message": {
        "text": "3 results left out: GitHub code scanning accepts at most 25000 results per run"}}]
    assert github_problems(log) == []


def test_verdict_and_cross_file_steps(tree, schema):
    f = _finding(1, "note", verdict="confirmed",
                 trace=(Step(3, "call", "calls helper()", path="drivers/foo/helper.h"),
                        Step(10, "use", "uses it")),
                 related=((9, "mapped here"), (9, "mapped here")))
    log = sarif_json.to_jsonable(sarif.build_log(RunResult(findings=[f])))
    jsonschema.Draft4Validator(schema).validate(log)
    r = result_for(log, "DMA001")
    assert r["level"] == "note"
    assert r["properties"] == {"function": "f", "verdict": "confirmed"}
    steps = r["codeFlows"][0]["threadFlows"][0]["locations"]
    assert [s["location"]["physicalLocation"]["artifactLocation"]["uri"] for s in steps] == [
        "drivers/foo/helper.h", "drivers/foo/bad.c"]
    assert [loc["id"] for loc in r["relatedLocations"]] == [1]  # duplicates merged


def test_output_file_is_written_atomically(tree):
    target = tree / "dmalint.sarif"
    target.write_text("old")
    res = CliRunner().invoke(main, ["check", "--format", "sarif", "--output", str(target),
                                    "-j", "1", "drivers"])
    assert res.exit_code == 1
    assert res.stdout == ""
    log = json.loads(target.read_text())
    assert result_for(log, "DMA001")["locations"][0]["physicalLocation"]["region"]["startLine"] == 10
    assert list(tree.glob(".dmalint.sarif.*")) == []  # no temporary file left behind


def test_failed_report_leaves_previous_output_intact(tree, monkeypatch):
    target = tree / "dmalint.sarif"
    target.write_text("previous report")

    def broken(*_a, **_k):
        raise RuntimeError("reporter crashed")

    monkeypatch.setattr(sarif, "report", broken)
    res = CliRunner().invoke(main, ["check", "--format", "sarif", "--output", str(target),
                                    "-j", "1", "drivers"])
    assert isinstance(res.exception, RuntimeError)
    assert target.read_text() == "previous report"
    assert list(tree.glob(".dmalint.sarif.*")) == []


def test_output_into_missing_directory_is_a_clean_error(tree):
    res = CliRunner().invoke(main, ["check", "--format", "sarif", "--output",
                                    str(tree / "no" / "such" / "dir.sarif"), "-j", "1", "drivers"])
    assert res.exit_code == 2
    assert "dmalint: error: cannot write" in res.stderr
    assert "No such file or directory" in res.stderr
    assert not (tree / "no").exists()


def test_findings_sharing_a_fingerprint_stay_apart(tree):
    """One region leaking at two identical `return -ENOMEM;` lines gives two findings with one
    fingerprint: code scanning would merge them into one alert.  The later ones are numbered;
    the first keeps the bare fingerprint, as before."""
    findings = [_finding(i, "warning") for i in range(3)]
    findings[1] = replace(findings[1], fingerprint="fp0")
    findings[2] = replace(findings[2], fingerprint="fp0")
    log = sarif_json.to_jsonable(sarif.build_log(RunResult(findings=findings)))
    assert [r["partialFingerprints"]["dmalint/v1"] for r in only_run(log)["results"]] == \
        ["fp0", "fp0:2", "fp0:3"]
