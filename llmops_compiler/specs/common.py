"""Shared building blocks of the spec models: strict base model, names, quantities, durations, secrets."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

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
CRON = re.compile(r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$")
URL = re.compile(r"^[a-z][a-z0-9+.-]*://[^\s/$.?#][^\s]*$")

DURATION_SECONDS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}


def _dns_label(value: str) -> str:
    if len(value) > 63 or not DNS_LABEL.match(value):
        raise ValueError(
            f"`{value}` is not a valid name: use lowercase letters, digits and '-', starting and ending "
            "with a letter or digit, at most 63 characters (a DNS-1123 label)"
        )
    return value


def _dns_subdomain(value: str) -> str:
    if len(value) > 253 or not DNS_SUBDOMAIN.match(value):
        raise ValueError(f"`{value}` is not a valid Kubernetes object name (DNS-1123 subdomain)")
    return value


def _identifier(value: str) -> str:
    if not IDENTIFIER.match(value):
        raise ValueError(f"`{value}` is not a valid identifier: use letters, digits and '_', not starting with a digit")
    return value


def _number_as_text(value: Any) -> Any:
    """YAML writes `cpu: 2` and `nvidia.com/gpu: 1` as numbers; Kubernetes accepts them as quantities."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _quantity(value: str) -> str:
    if not QUANTITY.match(value):
        raise ValueError(f"`{value}` is not a Kubernetes quantity such as `500m`, `2`, `32Gi` or `1.5G`")
    return value


def _duration(value: str) -> str:
    if not value or not DURATION.match(value):
        raise ValueError(f"`{value}` is not a duration such as `30s`, `5m`, `1h` or `1d12h`")
    return value


def _image(value: str) -> str:
    if not IMAGE_DIGEST.match(value):
        raise ValueError(
            f"image `{value}` is not pinned by digest: write it as `registry/name@sha256:<64 hex digits>`"
        )
    return value


def _cron(value: str) -> str:
    if not CRON.match(value.strip()):
        raise ValueError(f"`{value}` is not a cron schedule such as `*/30 * * * *` or `@hourly`")
    return value


def _url(value: str) -> str:
    if not URL.match(value):
        raise ValueError(f"`{value}` is not a URL such as `https://host/path` or `s3://bucket/key`")
    return value


def _label_key(value: str) -> str:
    if not LABEL_KEY.match(value):
        raise ValueError(f"`{value}` is not a valid Kubernetes label key")
    return value


def _label_value(value: str) -> str:
    if not LABEL_VALUE.match(value):
        raise ValueError(f"`{value}` is not a valid Kubernetes label value (at most 63 of [A-Za-z0-9-_.])")
    return value


def duration_seconds(value: str) -> float:
    """Seconds in a Prometheus-style duration such as ``1h30m``."""
    return sum(int(number) * DURATION_SECONDS[unit] for number, unit in re.findall(r"(\d+)(ms|y|w|d|h|m|s)", value))


def _matching(pattern: re.Pattern[str], **limits: int) -> WithJsonSchema:
    """The JSON Schema editors see for a validated string: the same pattern the validator applies."""
    return WithJsonSchema({"type": "string", "pattern": pattern.pattern, **limits})


DnsLabel = Annotated[str, AfterValidator(_dns_label), _matching(DNS_LABEL, maxLength=63)]
ObjectName = Annotated[str, AfterValidator(_dns_subdomain), _matching(DNS_SUBDOMAIN, maxLength=253)]
Identifier = Annotated[str, AfterValidator(_identifier), _matching(IDENTIFIER)]
Quantity = Annotated[
    str, BeforeValidator(_number_as_text), AfterValidator(_quantity),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": QUANTITY.pattern}, {"type": "number", "minimum": 0}]}),
]
Duration = Annotated[str, AfterValidator(_duration), _matching(DURATION)]
PinnedImage = Annotated[str, AfterValidator(_image), _matching(IMAGE_DIGEST)]
Cron = Annotated[str, AfterValidator(_cron), _matching(CRON)]
Url = Annotated[str, AfterValidator(_url), _matching(URL)]
LabelKey = Annotated[str, AfterValidator(_label_key), _matching(LABEL_KEY)]
LabelValue = Annotated[str, AfterValidator(_label_value), _matching(LABEL_VALUE)]
Fraction = Annotated[float, Field(gt=0, lt=1)]
Action = Literal["retrain", "rollback", "notify"]


class StrictModel(BaseModel):
    """Every spec object: camelCase keys as written in YAML, unknown keys refused, no silent coercion."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, strict=True, frozen=True, validate_by_name=False
    )


class SecretKeyRef(StrictModel):
    """A key of a Kubernetes Secret: specs never hold secret values, only where to find them."""

    name: ObjectName
    key: str = Field(min_length=1)


class Resources(StrictModel):
    requests: dict[str, Quantity] = {}
    limits: dict[str, Quantity] = {}


class Toleration(StrictModel):
    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
