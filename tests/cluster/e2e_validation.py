"""Differential validation: the real API server and `queueworker validate` agree.

Every spec goes to kube-apiserver (server-side dry run, `fieldValidation=Strict`
as `kubectl apply` sends it) and to the models (validation.parse_manifest):
both accept it or both refuse it, naming the same fields; an accepted spec is
defaulted to the same values. The specs: the table of bad specs of
tests/test_examples.py, the examples, and hypothesis-made ones from the
strategies of tests/test_spec_fuzz.py, metadata that does not decode, names.
Files go to `kubectl apply --dry-run=server` and to `queueworker validate`:
the bad-spec table, the four cases validate used to miss (kind typo, empty
file or no QueueWorker, Bad_Name, binary file) and YAML scalars that PyYAML
and kubectl read differently. The API server is the reference; what it taught
validation is listed in validation_schema.py and kubectl_yaml.py.

Field names are compared as the server gives them, with two normalisations:
a leading "." (the scale subresource writes `.spec.replicas`) is dropped, and a
cause without a field ("<nil>") is named by the path at the end of its message.
"""

from __future__ import annotations

import copy
import json
import re
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_examples import BAD_SPECS, EXAMPLES, _base, _queueworkers
from test_spec_fuzz import _PATHS, VALID, _json
from test_spec_fuzz import _set as set_path
from test_validate_cli import SERVER_ANSWERS

from queueworker.operator import api
from queueworker.operator.cli_validate import main as validate_main
from queueworker.operator.validation import SpecError, parse_manifest, parse_spec

from cluster.controlplane import ControlPlane
from cluster.kubectl import Kubectl

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "default"  # dry runs create nothing
HYPOTHESIS = settings(max_examples=150, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
_NOT_CHECKED = "some validation rules were not checked"


@dataclass
class Verdict:
    accepted: bool
    fields: set[str]
    spec: dict[str, Any] | None = None  # the defaulted spec, when accepted
    unknown: int = 0  # how many unknown fields a strict-decoding refusal names
    message: str = ""


class DryRun:
    """POSTs QueueWorkers with dryRun=All, as the cluster's admin."""

    def __init__(self, plane: ControlPlane) -> None:
        kube = plane.api()
        self.server: str = kube.server
        self.context: ssl.SSLContext = kube.context
        self.path = (f"/apis/{api.GROUP}/{api.VERSION}/namespaces/{NAMESPACE}/{api.PLURAL}"
                     "?dryRun=All&fieldValidation=Strict")

    def verdict(self, obj: dict[str, Any]) -> Verdict:
        req = urllib.request.Request(f"{self.server}{self.path}", method="POST",
                                     data=json.dumps(obj, allow_nan=False).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30, context=self.context) as resp:
                return Verdict(True, set(), json.loads(resp.read())["spec"])
        except urllib.error.HTTPError as err:
            status: dict[str, Any] = json.loads(err.read())
        assert status.get("code") in (400, 422), status
        message = str(status.get("message", ""))
        fields: set[str] = set()
        for cause in (status.get("details") or {}).get("causes") or []:
            name, text = str(cause.get("field", "<nil>")), str(cause.get("message", ""))
            if name == "<nil>":
                if _NOT_CHECKED in text:
                    continue
                found = re.search(r" in (\S+)$", text)
                assert found, f"a cause without a field: {cause}"
                name = found.group(1)
            fields.add(name.lstrip("."))
        # Decoding metadata into ObjectMeta failed: one field, nothing else checked.
        decoded = re.search(r"Go (?:struct field ObjectMeta\.(\w+)|value of type v1\.ObjectMeta)",
                            message)
        if decoded:
            fields.add(f"metadata.{decoded.group(1)}" if decoded.group(1) else "metadata")
        unknown = message.count('unknown field "')
        assert fields or unknown, f"a refusal naming no field: {status}"
        return Verdict(False, fields, unknown=unknown, message=message)


def model_verdict(obj: dict[str, Any]) -> tuple[Verdict, api.QueueWorkerSpec | None]:
    try:
        spec = parse_manifest(copy.deepcopy(obj))
    except SpecError as exc:
        return Verdict(False, {p.field for p in exc.problems}), None
    return Verdict(True, set()), spec


def assert_agree(server: DryRun, obj: dict[str, Any]) -> Verdict:
    theirs = server.verdict(obj)
    ours, spec = model_verdict(obj)
    where = json.dumps(obj.get("spec"))[:400]
    assert ours.accepted == theirs.accepted, (
        f"API server {'accepts' if theirs.accepted else 'refuses'} {theirs.fields}, "
        f"validate {'accepts' if ours.accepted else 'refuses'} {ours.fields}: {where}")
    if theirs.accepted:
        # Defaults agree: the server's defaulted object reads as the model's spec.
        assert spec is not None
        assert theirs.spec is not None
        assert parse_spec(theirs.spec) == spec, where
    elif theirs.unknown:
        # Strict decoding refuses with the unknown fields alone, in one message
        # (a key may hold any character, so match the quoted names whole).
        assert len(ours.fields) == theirs.unknown, (ours.fields, theirs.message)
        for name in ours.fields:
            assert f'unknown field "{name}"' in theirs.message, (name, theirs.message)
    else:
        assert ours.fields == theirs.fields, f"fields: server {theirs.fields}, " \
                                             f"validate {ours.fields}: {where}"
    return theirs


@pytest.fixture(scope="module")
def server(control_plane: ControlPlane, kubectl: Kubectl) -> DryRun:
    kubectl.run("apply", "-f", str(ROOT / "crds" / "queueworker.yaml"))
    kubectl.run("wait", "--for=condition=Established", "--timeout=30s",
                f"crd/{api.PLURAL}.{api.GROUP}")
    return DryRun(control_plane)


def _bad(mutations: list[Callable[[dict[str, Any]], None]]) -> dict[str, Any]:
    obj: dict[str, Any] = _base()
    for mutate in mutations:
        mutate(obj)
    return obj


# ------------------------------------------------------------------ fixed specs


@pytest.mark.parametrize(("mutations", "field"), [b[1:3] for b in BAD_SPECS],
                         ids=[b[0] for b in BAD_SPECS])
def test_bad_spec_table(server: DryRun, mutations: list[Callable[[dict[str, Any]], None]],
                        field: str) -> None:
    theirs = assert_agree(server, _bad(mutations))
    assert not theirs.accepted
    assert field in theirs.fields or f'unknown field "{field}"' in theirs.message


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples(server: DryRun, path: Path) -> None:
    for obj in _queueworkers(path):
        assert assert_agree(server, obj).accepted


@pytest.mark.parametrize(("change", "fields"), [a[1:] for a in SERVER_ANSWERS],
                         ids=[a[0] for a in SERVER_ANSWERS])
def test_server_answers_of_the_unit_tests(server: DryRun, change: dict[str, Any],
                                          fields: set[str]) -> None:
    """The table test_validate_cli.py keeps is still what the server answers."""
    obj = _base()
    obj["spec"].update(copy.deepcopy(change))
    theirs = assert_agree(server, obj)
    assert theirs.fields == fields or theirs.unknown == len(fields)


# ------------------------------------------------------------------ hypothesis


def _json_ok(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        return False  # NaN and infinities have no JSON form: nothing to send
    return True


def _object(spec: Any) -> dict[str, Any]:
    return {"apiVersion": api.API_VERSION, "kind": api.KIND,
            "metadata": {"name": "fuzz", "namespace": NAMESPACE}, "spec": spec}


@HYPOTHESIS
@given(st.sampled_from(_PATHS), _json)
def test_mutated_specs_agree(server: DryRun, path: tuple[str | int, ...], value: Any) -> None:
    assume(_json_ok(value))
    assert_agree(server, _object(set_path(VALID, path, value)))


@settings(HYPOTHESIS, max_examples=50)
@given(_json)
def test_arbitrary_specs_agree(server: DryRun, doc: Any) -> None:
    assume(_json_ok(doc))
    assert_agree(server, _object(doc))


@settings(HYPOTHESIS, max_examples=50)
@given(st.integers(0, 10_001), st.integers(0, 10_001),
       st.one_of(st.none(), st.integers(0, 10_001)))
def test_replica_bounds_agree(server: DryRun, low: int, high: int, fallback: int | None) -> None:
    scaling: dict[str, Any] = {"minReplicas": low, "maxReplicas": high}
    if fallback is not None:
        scaling["fallbackReplicas"] = fallback
    assert_agree(server, _object({**VALID, "scaling": scaling}))


# --------------------------------------------- files: kubectl apply vs validate


def _both(kubectl: Kubectl, path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[
        tuple[int, str], tuple[int, str]]:
    applied = kubectl.run("apply", "--dry-run=server", "-n", NAMESPACE, "-f", str(path),
                          check=False)
    code = validate_main(["-f", str(path)])
    return (applied.returncode, applied.stderr), (code, capsys.readouterr().err)


@pytest.mark.parametrize("mutations", [b[1] for b in BAD_SPECS], ids=[b[0] for b in BAD_SPECS])
def test_bad_spec_files_refused_by_kubectl_and_validate(
        kubectl: Kubectl, server: DryRun, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        mutations: list[Callable[[dict[str, Any]], None]]) -> None:
    path = tmp_path / "qw.yaml"
    path.write_text(yaml.safe_dump(_bad(mutations)))
    (k_code, k_err), (v_code, v_err) = _both(kubectl, path, capsys)
    assert k_code != 0, k_err
    assert v_code == 1, v_err
    fields = re.findall(r"QueueWorker/\S+: (\S+): ", v_err)
    assert fields, v_err
    for field in fields:  # what validate names, kubectl names too
        assert f"{field}: " in k_err or f'unknown field "{field}"' in k_err, (field, k_err)


def _write(tmp_path: Path, name: str, docs: list[Any]) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs))
    return path


def test_kind_typo(kubectl: Kubectl, server: DryRun, tmp_path: Path,
                   capsys: pytest.CaptureFixture[str]) -> None:
    obj = _base()
    obj["kind"] = "Queueworker"
    (k_code, k_err), (v_code, v_err) = _both(kubectl, _write(tmp_path, "typo.yaml", [obj]),
                                             capsys)
    assert k_code != 0
    assert 'no matches for kind "Queueworker"' in k_err
    assert v_code == 1
    assert "kind: must be 'QueueWorker', got 'Queueworker'" in v_err


def test_empty_file(kubectl: Kubectl, server: DryRun, tmp_path: Path,
                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("---\n")
    (k_code, k_err), (v_code, v_err) = _both(kubectl, path, capsys)
    assert k_code != 0
    assert "no objects passed to apply" in k_err
    assert v_code == 1
    assert f"{path}: no QueueWorker" in v_err


def test_file_without_a_queueworker(kubectl: Kubectl, server: DryRun, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Here the two differ on purpose: kubectl applies a ConfigMap, validate was
    asked about QueueWorkers and finds none."""
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    (k_code, _), (v_code, v_err) = _both(
        kubectl, _write(tmp_path, "cm.yaml", [config]), capsys)
    assert k_code == 0
    assert v_code == 1
    assert "no QueueWorker (queueworker.dev/v1alpha1) found (ConfigMap/c)" \
        in v_err


def test_bad_name(kubectl: Kubectl, server: DryRun, tmp_path: Path,
                  capsys: pytest.CaptureFixture[str]) -> None:
    obj = _base()
    obj["metadata"]["name"] = "Bad_Name"
    theirs = assert_agree(server, obj)
    assert theirs.fields == {"metadata.name"}
    (k_code, k_err), (v_code, v_err) = _both(kubectl, _write(tmp_path, "n.yaml", [obj]), capsys)
    assert k_code != 0
    assert "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 " \
        "subdomain must consist of" in k_err
    assert v_code == 1
    assert "metadata.name: invalid value 'Bad_Name': a lowercase RFC 1123 " \
        "subdomain must consist of" in v_err


def test_binary_file(kubectl: Kubectl, server: DryRun, tmp_path: Path,
                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "worker.bin"
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe\x00" + bytes(range(256)))
    (k_code, k_err), (v_code, v_err) = _both(kubectl, path, capsys)
    assert k_code != 0
    assert f"error parsing {path}" in k_err
    assert v_code == 1
    assert v_err.startswith(f"{path}: cannot read: not UTF-8 text")
    assert v_err.count("\n") == 1


def test_integral_floats_in_a_file(kubectl: Kubectl, server: DryRun, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """kubectl sends `replicas: 3.0` from YAML as 3 (accepted), 1e22 as a float."""
    obj = _base()
    obj["spec"]["replicas"] = 3.0
    obj["spec"]["drain"] = {"graceSeconds": 30.0}
    path = _write(tmp_path, "floats.yaml", [obj])
    (k_code, k_err), (v_code, v_err) = _both(kubectl, path, capsys)
    assert (k_code, v_code) == (0, 0), (k_err, v_err)
    obj["spec"]["drain"] = {"graceSeconds": 1e22}
    path = _write(tmp_path, "floats.yaml", [obj])
    (k_code, k_err), (v_code, v_err) = _both(kubectl, path, capsys)
    assert k_code != 0
    assert v_code == 1
    assert "spec.drain.graceSeconds: " in k_err
    assert "spec.drain.graceSeconds: " in v_err


# Plain YAML scalars that PyYAML and kubectl's go-yaml read differently (and a few
# that they read alike), each as a queue name and as a weight.
SCALARS = ["y", "n", "Y", "N", "yes", "on", "off", "NO", "0o17", "017", "0x1F", "0b11",
           "1_000", "1e3", "09", "1.5", ".5", "3.0", "2001-12-14", "~", "null", "abc",
           "'y'", "1e400", "99999999999999999999", "0x1FFFFFFFFFFFFFFFFFFFF"]
_SCALAR_FILE = """apiVersion: queueworker.dev/v1alpha1
kind: QueueWorker
metadata: {{name: scalar}}
spec:
  redis: {{url: "redis://r:6379/0"}}
  queues: [{{name: {name}, weight: {weight}}}]
  template: {{spec: {{containers: [{{name: w, image: w}}]}}}}
"""


@pytest.mark.parametrize("scalar", SCALARS)
def test_yaml_scalars_read_as_kubectl_reads_them(
        kubectl: Kubectl, server: DryRun, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        scalar: str) -> None:
    for name, weight in ((scalar, "1"), ("q", scalar)):
        path = tmp_path / "scalar.yaml"
        path.write_text(_SCALAR_FILE.format(name=name, weight=weight))
        (k_code, k_err), (v_code, v_err) = _both(kubectl, path, capsys)
        assert (k_code == 0) == (v_code == 0), (name, weight, k_err, v_err)
        for field in re.findall(r"QueueWorker/\S+: (\S+): ", v_err):
            assert f"{field}: " in k_err, (name, weight, field, k_err)


@settings(HYPOTHESIS, max_examples=60)
@given(st.one_of(st.text(alphabet="abzAZ09-._", max_size=12),
                 st.integers(250, 256).map(lambda n: "a" * n)))
def test_names_agree(server: DryRun, name: str) -> None:
    obj = _base()
    obj["metadata"]["name"] = name
    theirs = assert_agree(server, obj)
    assert theirs.accepted or theirs.fields == {"metadata.name"}


UNDECODABLE_METADATA: list[Any] = [
    5, [], {"name": 5}, {"name": "x", "labels": {"a": 1}}, {"name": "x", "finalizers": "a"},
    {"name": "x", "generation": "1"}, {"name": "x", "annotations": []},
    {"labels": {"a": 1}, "name": 5, "bogus": 1},  # the first mismatch, alone
]


@pytest.mark.parametrize("meta", UNDECODABLE_METADATA, ids=str)
def test_metadata_that_does_not_decode(server: DryRun, meta: Any) -> None:
    obj = _base()
    obj["metadata"] = meta
    theirs = assert_agree(server, obj)
    assert len(theirs.fields) == 1
