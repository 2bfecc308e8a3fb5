"""`queueworker validate`: what it used to miss (issue 12), each a clear error naming the file.

The same four inputs go to the real API server in tests/cluster/e2e_validation.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from queueworker.operator import api, kubectl_yaml
from queueworker.operator.cli_validate import main
from queueworker.operator.validation import SpecError, parse_manifest


def _qw(name: str = "ok", kind: str = api.KIND) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION, "kind": kind, "metadata": {"name": name},
        "spec": {"redis": {"url": "redis://r:6379/0"}, "queues": [{"name": "q"}],
                 "template": {"spec": {"containers": [{"name": "w", "image": "img:1"}]}}},
    }


def _run(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["-f", str(path)])
    out = capsys.readouterr()
    return code, out.out, out.err


def _write(tmp_path: Path, *docs: Any) -> Path:
    path = tmp_path / "qw.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return path


def test_valid_file_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}
    code, out, err = _run(_write(tmp_path, secret, _qw()), capsys)
    assert (code, err) == (0, "")
    assert out == f"{tmp_path / 'qw.yaml'}: QueueWorker/ok: valid\n"


def test_kind_typo_names_the_kind_expected(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, _qw(kind="Queueworker"))
    code, _, err = _run(path, capsys)
    assert code == 1
    assert f"{path}: Queueworker/ok: kind: must be 'QueueWorker', got 'Queueworker'" in err


def test_other_kind_of_our_group_is_checked(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(_write(tmp_path, _qw(kind="QueueWorkers")), capsys)
    assert code == 1
    assert "kind: must be 'QueueWorker', got 'QueueWorkers'" in err


@pytest.mark.parametrize("content", ["", "---\n", "# only a comment\n"])
def test_empty_file_is_an_error_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          content: str) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(content)
    code, out, err = _run(path, capsys)
    assert (code, out) == (1, "")
    assert err == (f"{path}: no QueueWorker (queueworker.dev/v1alpha1) found "
                   "(the file is empty)\n")


def test_file_without_a_queueworker_is_an_error(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    path = _write(tmp_path, deploy)
    code, _, err = _run(path, capsys)
    assert code == 1
    assert err == f"{path}: no QueueWorker (queueworker.dev/v1alpha1) found (Deployment/web)\n"


def test_bad_name_breaks_the_dns_subdomain_rule(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(_write(tmp_path, _qw(name="Bad_Name")), capsys)
    assert code == 1
    assert "QueueWorker/Bad_Name: metadata.name: invalid value 'Bad_Name': " \
           "a lowercase RFC 1123 subdomain must consist of" in err


@pytest.mark.parametrize("name", ["a" * 253, "a.b-c.d0"])
def test_good_names_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    assert _run(_write(tmp_path, _qw(name=name)), capsys)[0] == 0


def test_overlong_name_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(_write(tmp_path, _qw(name="a" * 254)), capsys)
    assert code == 1
    assert "metadata.name: must be no more than 253 characters" in err


def test_binary_file_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "worker.bin"
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe\x00" + bytes(range(256)))
    run = subprocess.run([sys.executable, "-m", "queueworker.cli", "validate", "-f", str(path)],
                         capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stdout == ""
    assert run.stderr == (f"{path}: cannot read: not UTF-8 text (byte 0xff at offset 8); "
                          "is it a binary file?\n")


def test_missing_file_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nope.yaml"
    code, _, err = _run(path, capsys)
    assert code == 1
    assert err == f"{path}: cannot read: No such file or directory\n"


def test_list_items_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listing = {"apiVersion": "v1", "kind": "List", "items": [_qw(), _qw(name="Bad_Name")]}
    code, out, err = _run(_write(tmp_path, listing), capsys)
    assert code == 1
    assert "QueueWorker/ok: valid" in out
    assert "QueueWorker/Bad_Name: metadata.name" in err


def test_each_bad_file_counts_and_good_ones_still_print(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _write(tmp_path, _qw())
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert main(["-f", str(good), "-f", str(empty)]) == 1
    out = capsys.readouterr()
    assert "QueueWorker/ok: valid" in out.out
    assert f"{empty}: no QueueWorker" in out.err


# What the real API server answered (tests/cluster/e2e_validation.py), kept here so
# the unit run guards it too: (change to the spec, fields it names; empty = accepted).
SERVER_ANSWERS: list[tuple[str, dict[str, Any], set[str]]] = [
    ("null-is-absent", {"scaling": None, "gpu": None}, set()),
    ("integral-float", {"queues": [{"name": "q", "weight": 2.0}]}, set()),
    ("float-replicas", {"replicas": 3.0}, {"spec.replicas"}),
    ("float-read-by-cel", {"drain": {"graceSeconds": 30.0}}, {"spec.drain"}),
    ("fraction", {"gpu": {"priority": 1.5}}, {"spec.gpu.priority"}),
    ("integer-to-1e-9", {"scaling": {"maxReplicas": 961442826.5}},
     {"spec.scaling.maxReplicas", "spec.scaling"}),
    ("beyond-2^53", {"drain": {"graceSeconds": 2.0**60}}, {"spec.drain.graceSeconds"}),
    ("unknown-alone", {"scaling": {"maxReplica": 3, "minReplicas": -1}},
     {"spec.scaling.maxReplica"}),
    ("keys-under-a-scalar", {"queues": [{"name": {"a": 1}}]}, {"spec.queues[0].name.a"}),
    ("list-under-kept-object", {"template": {"spec": [{"a": None}]}}, {"spec.template.spec"}),
    ("every-failing-rule", {"scaling": {"minReplicas": 5, "maxReplicas": 2,
                                        "fallbackReplicas": 3}},
     {"spec.scaling.minReplicas", "spec.scaling.fallbackReplicas"}),
    ("first-repeat-only", {"queues": [{"name": "a"}] * 3}, {"spec.queues[1]"}),
    ("missing-keys-repeat", {"queues": [{}, {}, {}, {"name": "a"}, {"name": "a"}]},
     {"spec.queues[0].name", "spec.queues[1].name", "spec.queues[2].name", "spec.queues[1]",
      "spec.queues[4]"}),
    # CEL runs only without a blocking error (type, required, enum, maxLength, maxItems).
    ("required-blocks-cel", {"redis": {}, "queues": [{}]}, {"spec.queues[0].name"}),
    ("enum-blocks-cel", {"queues": [{"name": "q", "layout": "kafka"}],
                         "scaling": {"minReplicas": 5, "maxReplicas": 2}},
     {"spec.queues[0].layout"}),
    ("max-length-blocks-cel", {"queues": [{"name": "q" * 513}],
                               "scaling": {"minReplicas": 5, "maxReplicas": 2}},
     {"spec.queues[0].name"}),
    ("max-items-blocks-cel", {"queues": [{"name": f"q{i}"} for i in range(65)],
                              "scaling": {"minReplicas": 5, "maxReplicas": 2}}, {"spec.queues"}),
    ("min-length-does-not", {"queues": [{"name": ""}],
                             "scaling": {"minReplicas": 5, "maxReplicas": 2}},
     {"spec.queues[0].name", "spec.scaling.minReplicas"}),
    ("pattern-does-not", {"redis": {"url": "http://x"},
                          "scaling": {"minReplicas": 5, "maxReplicas": 2}},
     {"spec.redis.url", "spec.scaling.minReplicas"}),
]


@pytest.mark.parametrize(("change", "fields"), [a[1:] for a in SERVER_ANSWERS],
                         ids=[a[0] for a in SERVER_ANSWERS])
def test_fields_named_as_the_api_server_names_them(change: dict[str, Any],
                                                   fields: set[str]) -> None:
    obj = _qw()
    obj["spec"].update(change)
    if not fields:
        parse_manifest(obj)
        return
    with pytest.raises(SpecError) as info:
        parse_manifest(obj)
    assert {p.field for p in info.value.problems} == fields


def test_unknown_fields_hide_everything_else() -> None:
    obj = _qw(name="Bad_Name")
    obj["extra"] = 1
    obj["metadata"]["labelz"] = {}
    obj["spec"]["queues"] = []
    with pytest.raises(SpecError) as info:
        parse_manifest(obj)
    assert {p.field for p in info.value.problems} == {"extra", "metadata.labelz"}


@pytest.mark.parametrize("spec", [[], "x", 5])
def test_spec_not_an_object(spec: Any) -> None:
    obj = _qw()
    obj["spec"] = spec
    with pytest.raises(SpecError) as info:
        parse_manifest(obj)
    assert {p.field for p in info.value.problems} == {"spec", "spec.replicas"}


def test_integral_floats_in_yaml_are_integers_as_kubectl_sends_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    obj = _qw()
    obj["spec"]["replicas"] = 3.0  # kubectl sends 3: the server accepts it
    obj["spec"]["drain"] = {"graceSeconds": 30.0}
    assert _run(_write(tmp_path, obj), capsys)[:2] == (0, f"{tmp_path / 'qw.yaml'}: "
                                                          "QueueWorker/ok: valid\n")
    obj["spec"]["drain"] = {"graceSeconds": 1e22}  # Go writes 1e+22: a float, refused
    code, _, err = _run(_write(tmp_path, obj), capsys)
    assert code == 1
    assert "spec.drain.graceSeconds:" in err


# Plain scalars as kubectl reads them (go-yaml v2), where PyYAML reads otherwise;
# tests/cluster/e2e_validation.py checks each against kubectl apply.
KUBECTL_SCALARS: list[tuple[str, Any]] = [
    ("y", True), ("N", False), ("on", True), ("0o17", 15), ("017", 15), ("0x1F", 31),
    ("0b11", 3), ("1_000", 1000), ("1e3", 1000), ("09", 9), ("3.0", 3), (".5", 0.5),
    ("2001-12-14", "2001-12-14"), ("1e400", "1e400"), ("'y'", "y"), ("~", None),
    ("0x1FFFFFFFFFFFFFFFFFFFF", "0x1FFFFFFFFFFFFFFFFFFFF"),
]


@pytest.mark.parametrize(("text", "value"), KUBECTL_SCALARS, ids=[s[0] for s in KUBECTL_SCALARS])
def test_scalars_read_as_kubectl_reads_them(text: str, value: Any) -> None:
    assert kubectl_yaml.load_all(f"a: {text}\n") == [{"a": value}]


def test_keys_become_strings_without_colliding() -> None:
    assert kubectl_yaml.load_all("{y: 1, 1.0: 2, 3: 3}") == [{"true": 1, "1": 2, "3": 3}]


@pytest.mark.parametrize(("name", "code"), [("n", 1), ("2001-12-14", 0), ("'n'", 0)])
def test_queue_name_as_kubectl_sends_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        name: str, code: int) -> None:
    path = tmp_path / "qw.yaml"
    path.write_text(yaml.safe_dump(_qw()).replace("name: q", f"name: {name}"))
    assert _run(path, capsys)[0] == code


@pytest.mark.parametrize(("meta", "field"), [
    (5, "metadata"), ({"name": 5}, "metadata.name"),
    ({"name": "x", "labels": {"a": 1}}, "metadata.labels"),
    ({"labels": {"a": 1}, "name": 5, "bogus": 1}, "metadata.labels"),
    ({"name": "x", "generation": True}, "metadata.generation"),
])
def test_metadata_that_does_not_decode_stops_everything(meta: Any, field: str) -> None:
    obj = _qw()
    obj["metadata"] = meta
    obj["spec"]["queues"] = []
    with pytest.raises(SpecError) as info:
        parse_manifest(obj)
    assert [p.field for p in info.value.problems] == [field]
