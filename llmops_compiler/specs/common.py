"""Shared building blocks of the spec models: strict base model, names, quantities, durations, secrets.

Every pattern guards the *whole* value (``re.fullmatch``): ``name: "p\\n"`` is not a name, although a
``^...$`` pattern with ``re.match`` accepts it (``$`` also matches before a final newline). Plain text fields
are :data:`Line` (one line, no control characters) unless they are meant to hold several lines
(:data:`Text`); a test checks that no spec field is a bare ``str``.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

from .. import cron

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
QUANTITY = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$")
DURATION = re.compile(r"^(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?(?:\d+ms)?$")
LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
IMAGE_DIGEST = re.compile(r"^[a-z0-9]+([._/:-][a-z0-9]+)*(:[\w][\w.-]{0,127})?@sha256:[a-f0-9]{64}$")
URL = re.compile(r"^[a-z][a-z0-9+.-]*://[^\s/$.?#][^\s]*$")
# Prometheus metric and label names (https://prometheus.io/docs/concepts/data_model/).
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
# MLflow's alias rule (mlflow/utils/validation.py: `^[\w\-]*$`, at most 255 characters), whole value.
MLFLOW_ALIAS = re.compile(r"^[\w\-]{1,255}$")
# MLflow reserves `latest` (any case) and version aliases `v<digits>` (`_REGISTERED_MODEL_ALIAS_VERSION_REGEX`).
MLFLOW_RESERVED_ALIAS = re.compile(r"^(latest|[vV]\d+)$", re.IGNORECASE)
HTTP_HEADER = re.compile(r"^[A-Za-z0-9-]+$")
HOST_PORT = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x85\u2028\u2029]")

DURATION_SECONDS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}


def _shown(value: str) -> str:
    """A value as it may be quoted in a message: control characters escaped (`p\\n`)."""
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], value)


def _dns_label(value: str) -> str:
    if len(value) > 63 or not DNS_LABEL.fullmatch(value):
        raise ValueError(
            f"`{_shown(value)}` is not a valid name: use lowercase letters, digits and '-', starting and ending "
            "with a letter or digit, at most 63 characters (a DNS-1123 label)"
        )
    return value


def _dns_subdomain(value: str) -> str:
    if len(value) > 253 or not DNS_SUBDOMAIN.fullmatch(value):
        raise ValueError(f"`{_shown(value)}` is not a valid Kubernetes object name (DNS-1123 subdomain)")
    return value


def _identifier(value: str) -> str:
    if not IDENTIFIER.fullmatch(value):
        raise ValueError(f"`{_shown(value)}` is not a valid identifier: use letters, digits and '_', not starting "
                         "with a digit")
    return value


def _number_as_text(value: Any) -> Any:
    """YAML writes `cpu: 2` and `nvidia.com/gpu: 1` as numbers; Kubernetes accepts them as quantities."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _quantity(value: str) -> str:
    if not QUANTITY.fullmatch(value):
        raise ValueError(f"`{_shown(value)}` is not a Kubernetes quantity such as `500m`, `2`, `32Gi` or `1.5G`")
    return value


def _duration(value: str) -> str:
    if not value or not DURATION.fullmatch(value):
        raise ValueError(f"`{_shown(value)}` is not a duration such as `30s`, `5m`, `1h` or `1d12h`")
    if duration_seconds(value) <= 0:
        raise ValueError(f"`{value}` is zero: this duration must be positive, such as `30s` or `5m`")
    return value


def _duration_or_zero(value: str) -> str:
    if not value or not DURATION.fullmatch(value):
        raise ValueError(f"`{_shown(value)}` is not a duration such as `0s`, `30s`, `5m` or `1h`")
    return value


def _image(value: str) -> str:
    if not IMAGE_DIGEST.fullmatch(value):
        raise ValueError(
            f"image `{_shown(value)}` is not pinned by digest: write it as `registry/name@sha256:<64 hex digits>`"
        )
    return value


def _cron(value: str) -> str:
    problem = cron.problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _url(value: str) -> str:
    if not URL.fullmatch(value):
        raise ValueError(f"`{_shown(value)}` is not a URL such as `https://host/path` or `s3://bucket/key`")
    try:
        port = urllib.parse.urlsplit(value).port  # raises for a port out of 0-65535 or not a number
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError(f"`{_shown(value)}` has an invalid port: a TCP port is a number from 1 to 65535")
    return value


def _label_key(value: str) -> str:
    if not LABEL_KEY.fullmatch(value):
        raise ValueError(f"`{_shown(value)}` is not a valid Kubernetes label key")
    return value


def _label_value(value: str) -> str:
    if not LABEL_VALUE.fullmatch(value):
        raise ValueError(f"`{_shown(value)}` is not a valid Kubernetes label value (at most 63 of [A-Za-z0-9-_.])")
    return value


def _metric_name(value: str) -> str:
    if not METRIC_NAME.fullmatch(value):
        raise ValueError(f"`{_shown(value)}` is not a Prometheus metric name (letters, digits, `_` and `:`)")
    return value


def _mlflow_alias(value: str) -> str:
    if not MLFLOW_ALIAS.fullmatch(value):
        raise ValueError(f"`{_shown(value)}` is not an MLflow alias (letters, digits, `_` and `-`)")
    if MLFLOW_RESERVED_ALIAS.fullmatch(value):
        raise ValueError(f"`{value}` is reserved by MLflow (`latest` and `v<number>` name versions, not aliases)")
    return value


def _header(value: str) -> str:
    if not HTTP_HEADER.fullmatch(value):
        raise ValueError(f"`{_shown(value)}` is not an HTTP header name (letters, digits and `-`)")
    return value


def _host_port(value: str) -> str:
    if "://" in value:
        raise ValueError(f"`{_shown(value)}` has a scheme: write the endpoint as `host:port` and set TLS with "
                         "`insecure`")
    if not HOST_PORT.fullmatch(value):
        raise ValueError(f"`{_shown(value)}` is not an endpoint of the form `host` or `host:port`")
    port = value.rpartition(":")[2] if ":" in value else None
    if port is not None and not 1 <= int(port) <= 65535:
        raise ValueError(f"`{_shown(value)}` has port {int(port)}: a TCP port is 1 to 65535")
    return value


def _line(value: str) -> str:
    found = _CONTROL.search(value)
    if found:
        raise ValueError(f"must be one line of text, but it holds `{_shown(found.group())}` at character "
                         f"{found.start() + 1}")
    return value


def _text(value: str) -> str:
    found = _CONTROL_BUT_LINES.search(value)
    if found:
        raise ValueError(f"holds the control character `{_shown(found.group())}` at character {found.start() + 1}")
    return value


def duration_seconds(value: str) -> float:
    """Seconds in a Prometheus-style duration such as ``1h30m``."""
    return sum(int(number) * DURATION_SECONDS[unit] for number, unit in re.findall(r"(\d+)(ms|y|w|d|h|m|s)", value))


def _matching(pattern: re.Pattern[str], description: str = "", **limits: int) -> WithJsonSchema:
    """The JSON Schema editors see for a validated string: the same pattern the validator applies."""
    schema: dict[str, Any] = {"type": "string", "pattern": pattern.pattern, **limits}
    if description:
        schema["description"] = description
    return WithJsonSchema(schema)


_LINE_PATTERN = r"^[^\x00-\x1f\x7f\x85\u2028\u2029]*$"

DnsLabel = Annotated[str, AfterValidator(_dns_label), _matching(DNS_LABEL, maxLength=63)]
ObjectName = Annotated[str, AfterValidator(_dns_subdomain), _matching(DNS_SUBDOMAIN, maxLength=253)]
Identifier = Annotated[str, AfterValidator(_identifier), _matching(IDENTIFIER)]
Quantity = Annotated[
    str, BeforeValidator(_number_as_text), AfterValidator(_quantity),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": QUANTITY.pattern}, {"type": "number", "minimum": 0}]}),
]
Duration = Annotated[str, AfterValidator(_duration), _matching(DURATION)]
"""A positive duration such as ``30s``, ``5m`` or ``1h30m``."""
DurationOrZero = Annotated[str, AfterValidator(_duration_or_zero), _matching(DURATION)]
PinnedImage = Annotated[str, AfterValidator(_image), _matching(IMAGE_DIGEST)]
Cron = Annotated[str, AfterValidator(_cron), _matching(re.compile(cron.PATTERN))]
Url = Annotated[str, AfterValidator(_url), _matching(URL)]
LabelKey = Annotated[str, AfterValidator(_label_key), _matching(LABEL_KEY)]
LabelValue = Annotated[str, AfterValidator(_label_value), _matching(LABEL_VALUE)]
MetricName = Annotated[str, AfterValidator(_metric_name), _matching(METRIC_NAME)]
MlflowAlias = Annotated[str, AfterValidator(_mlflow_alias), _matching(MLFLOW_ALIAS)]
HeaderName = Annotated[str, AfterValidator(_header), _matching(HTTP_HEADER)]
HostPort = Annotated[str, AfterValidator(_host_port), _matching(HOST_PORT)]
Line = Annotated[str, AfterValidator(_line), WithJsonSchema({"type": "string", "pattern": _LINE_PATTERN})]
"""One line of text: no newline or other control character."""
Text = Annotated[str, AfterValidator(_text), WithJsonSchema({"type": "string"})]
"""Text that may span lines (newlines and tabs), but holds no other control character."""
Fraction = Annotated[float, Field(gt=0, lt=1)]
Action = Literal["retrain", "rollback", "notify"]


class StrictModel(BaseModel):
    """Every spec object: camelCase keys as written in YAML, unknown keys refused, no silent coercion; each
    field's docstring is its description in ``llmops schema`` and ``llmops explain``."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, strict=True, frozen=True, validate_by_name=False,
        use_attribute_docstrings=False,
    )
    merge_key: ClassVar[str | None] = None
    """The field a list of these merges by in environment overrides (None: such a list is replaced)."""


class SecretKeyRef(StrictModel):
    """A key of a Kubernetes Secret: specs never hold secret values, only where to find them."""

    name: ObjectName
    """Name of the Secret, in the namespace of the environment that uses it."""
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]
    """Key inside the Secret's data (letters, digits, `-`, `_` and `.`, as Kubernetes allows)."""


class Resources(StrictModel):
    """Kubernetes resource requests and limits (quantities such as `500m`, `4`, `32Gi`, `nvidia.com/gpu: 1`)."""

    requests: dict[Annotated[str, AfterValidator(_label_key)], Quantity] = {}
    """What the scheduler reserves on a node for the container."""
    limits: dict[Annotated[str, AfterValidator(_label_key)], Quantity] = {}
    """The most the container may use; extended resources such as GPUs need a limit equal to the request."""


class Toleration(StrictModel):
    """A Kubernetes toleration, so pods may run on tainted nodes (GPU pools usually are)."""

    key: LabelKey | None = None
    """The taint key to tolerate (all keys when empty with `Exists`)."""
    operator: Literal["Equal", "Exists"] = "Equal"
    """`Equal` matches key and value; `Exists` matches the key alone."""
    value: LabelValue | None = None
    """The taint value (with `Equal`)."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """The taint effect to tolerate (all effects when empty)."""
