"""Read YAML the way kubectl does, so `validate` judges what kubectl would send.

kubectl turns YAML into JSON with sigs.k8s.io/yaml, which resolves plain
scalars by go-yaml v2's rules (YAML 1.1), not PyYAML's. Where they differ the
API server sees another value than PyYAML gives us; the differential test
(tests/cluster/e2e_validation.py) found these, each checked with kubectl:

- `y`, `Y`, `n`, `N` are booleans (PyYAML: strings): `name: n` is refused.
- `1e3` is a number (PyYAML wants a dot), `0o17` and `017` are octal, `0b11`
  binary (PyYAML: strings).
- A date (`2001-12-14`) stays a string (PyYAML: a `date`, which is no JSON value).
- An integral float below 1e21 is sent without a fraction (Go's encoder):
  `replicas: 3.0` reaches the server as 3.
- Keys that resolve to other types become strings again (`true`, `3`).
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

_TAG = "!kubectl-scalar"
_STR = "tag:yaml.org,2002:str"
_WORDS: dict[str, Any] = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE",
                     "on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "false", "False", "FALSE",
                     "off", "Off", "OFF"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
# strconv.ParseInt(s, 0, 64) after go-yaml drops underscores: prefixes and a
# leading 0 choose the base.
_INTS = ((re.compile(r"[-+]?0[xX][0-9a-fA-F]+"), 16), (re.compile(r"[-+]?0[oO][0-7]+"), 8),
         (re.compile(r"[-+]?0[bB][01]+"), 2), (re.compile(r"[-+]?0[0-7]+"), 8),
         (re.compile(r"[-+]?[0-9]+"), 10))
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")  # go-yaml's
_INT64 = 2**63


def _number(plain: str) -> int | float | None:
    for pattern, base in _INTS:
        if pattern.fullmatch(plain):
            digits = re.sub(r"^([-+]?)0[xXoObB]?", r"\g<1>0", plain) if base != 10 else plain
            value = int(digits, base)
            if -_INT64 <= value < 2 * _INT64:  # int64, or uint64 for positives
                return value
            break
    if _FLOAT.fullmatch(plain):
        number = float(plain)
        return number if math.isfinite(number) else None  # Go: out of range, a string
    return None


def go_scalar(text: str) -> tuple[bool, Any]:
    """(True, value) when go-yaml v2 resolves a plain scalar to a non-string."""
    if text in _WORDS:
        return True, _WORDS[text]
    if text[:1] in "0123456789+-.":
        value = _number(text.replace("_", ""))
        if value is not None:
            return True, value
    return False, text


class KubectlLoader(yaml.SafeLoader):
    """PyYAML's safe loader with go-yaml v2's resolution of plain scalars."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and implicit[0] and value != "<<":
            return _TAG if go_scalar(value)[0] else _STR
        return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        # Keys become strings as they are read: `y` (true) and `1.0` must not
        # collide in a Python dict before they are "true" and "1".
        self.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _key(self.construct_object(key_node, deep=deep))
            try:
                out[key] = self.construct_object(value_node, deep=deep)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "found an unhashable key", key_node.start_mark) from None
        return out


def _construct(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    return go_scalar(str(loader.construct_scalar(node)))[1]  # type: ignore[arg-type]


KubectlLoader.add_constructor(_TAG, _construct)


def _key(key: Any) -> Any:
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, int | float):
        return str(as_sent(key))
    return key


def as_sent(value: Any) -> Any:
    """The value as kubectl's JSON carries it (Go's encoder: an integral float
    below 1e21 is written without a fraction, so it arrives as an integer)."""
    if isinstance(value, dict):
        return {_key(k): as_sent(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_sent(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    return value


def load_all(text: str) -> list[Any]:
    """Every non-empty document of `text`, as kubectl would send it."""
    return [as_sent(doc) for doc in yaml.load_all(text, Loader=KubectlLoader)
            if doc is not None]
