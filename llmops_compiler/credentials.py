"""Credentials in spec values, found by Yelp's detect-secrets and by the structure of URLs.

Specs never hold secrets: they name Kubernetes Secrets instead. A value is refused when

- a detect-secrets plugin recognises a credential format in it (cloud keys, GitHub/GitLab/Slack/OpenAI/Stripe
  tokens and webhooks, JWTs, private keys, passwords in URLs, ...), plus two formats detect-secrets has no
  plugin for, written as plugins of its own kind (:class:`GoogleApiKeyDetector`, :class:`HuggingFaceDetector`);
- it is a URL whose query string carries a secret-named parameter (``?token=``, ``?api_key=``).

Entropy and keyword plugins are left out: specs are full of hashes, digests and names that would trip them.
detect-secrets is loaded only when some value could hold a credential at all (:data:`CANDIDATE`); scanning
costs about 10 µs a value, so values that cannot are skipped. Its plugins import ``requests`` for verifying
secrets online, which we never do: in a single-threaded process ``requests`` is bound lazily
(:func:`_defer_requests`), which takes about a third off loading detect-secrets.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

# Names of keys (and URL query parameters) that hold secrets.
SECRET_NAME = re.compile(
    r"(api[_-]?key|apikey|password|passwd|pwd|secret|client[_-]?secret|token|access[_-]?token|auth[_-]?token|"
    r"bearer[_-]?token|secret[_-]?key|access[_-]?key(_id)?|private[_-]?key|credentials?|sig|signature)",
    re.IGNORECASE,
)
# Every format the plugins below recognise holds a run of 16 such characters, a `//user:pass@` or a PEM
# header; a value without any of them is not scanned.
CANDIDATE = re.compile(r"[A-Za-z0-9_\-.+/=:]{16}|://[^/\s]*@|-----BEGIN")

PLUGIN_MODULES = {
    "aws": "AWSKeyDetector",
    "azure_storage_key": "AzureStorageKeyDetector",
    "basic_auth": "BasicAuthDetector",
    "discord": "DiscordBotTokenDetector",
    "github_token": "GitHubTokenDetector",
    "gitlab_token": "GitLabTokenDetector",
    "jwt": "JwtTokenDetector",
    "mailchimp": "MailchimpDetector",
    "npm": "NpmDetector",
    "openai": "OpenAIDetector",
    "private_key": "PrivateKeyDetector",
    "pypi_token": "PypiTokenDetector",
    "sendgrid": "SendGridDetector",
    "slack": "SlackDetector",
    "square_oauth": "SquareOAuthDetector",
    "stripe": "StripeDetector",
    "telegram_token": "TelegramBotTokenDetector",
    "twilio": "TwilioKeyDetector",
}


def _defer_requests() -> None:
    """Put a stand-in for ``requests`` in ``sys.modules`` that imports the real one on first attribute use
    (PEP 562 module ``__getattr__``), which the compiler never makes: detect-secrets imports ``requests`` only
    to verify secrets online. Only when ``requests`` is not loaded yet and only this thread runs (another
    thread could import it meanwhile); otherwise nothing changes. The stand-in carries the real module's spec,
    so ``import requests`` and ``importlib.util.find_spec`` behave as usual."""
    import importlib
    import importlib.util
    import sys
    import threading
    import types

    if "requests" in sys.modules or threading.active_count() != 1:
        return
    spec = importlib.util.find_spec("requests")
    if spec is None:
        return
    stand_in = types.ModuleType("requests", "Stand-in: the real requests is imported on first attribute use.")
    stand_in.__spec__ = spec

    def load(name: str) -> Any:
        if sys.modules.get("requests") is stand_in:
            del sys.modules["requests"]
        return getattr(importlib.import_module("requests"), name)

    stand_in.__getattr__ = load  # type: ignore[method-assign]
    sys.modules["requests"] = stand_in


@lru_cache(maxsize=1)
def _plugins() -> list[Any]:
    import importlib

    _defer_requests()
    from detect_secrets.plugins.base import RegexBasedDetector

    class GoogleApiKeyDetector(RegexBasedDetector):
        """Google API keys (`AIza` and 35 characters), as Google documents their format."""

        secret_type = "Google API Key"
        denylist = [re.compile(r"AIza[0-9A-Za-z\-_]{35}")]

    class HuggingFaceDetector(RegexBasedDetector):
        """Hugging Face access tokens (`hf_` and at least 30 letters and digits)."""

        secret_type = "Hugging Face Token"
        denylist = [re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")]

    plugins = [getattr(importlib.import_module(f"detect_secrets.plugins.{module}"), name)()
               for module, name in PLUGIN_MODULES.items()]
    return [*plugins, GoogleApiKeyDetector(), HuggingFaceDetector()]


def credential_types(value: str) -> list[str]:
    """The credential formats detect-secrets recognises in ``value`` (empty when none)."""
    if not CANDIDATE.search(value):
        return []
    return list(_credential_types(value))


@lru_cache(maxsize=16_384)
def _credential_types(value: str) -> tuple[str, ...]:
    """:func:`credential_types`, remembered: the same value recurs across spec files and environments (a pure
    function of the string; the bound keeps memory in check, never the result)."""
    return tuple(sorted({plugin.secret_type for plugin in _plugins()
                         if any(True for _ in plugin.analyze_string(value))}))


def secret_query_parameters(value: str) -> list[str]:
    """Secret-named query parameters of a URL value (``https://host/path?token=...``)."""
    if "://" not in value or "?" not in value:
        return []
    try:
        query = urllib.parse.urlsplit(value).query
    except ValueError:
        return []
    return sorted({name for name, item in urllib.parse.parse_qsl(query, keep_blank_values=False)
                   if item and SECRET_NAME.fullmatch(name.strip())})


@lru_cache(maxsize=16_384)
def is_secret_name(name: str) -> bool:
    """Whether a key such as ``api_key``, ``password`` or ``clientSecret`` names a secret."""
    return bool(SECRET_NAME.fullmatch(_snake(name)) or SECRET_NAME.fullmatch(name))


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def schema_secret_properties(schema: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...],
                                                                                                 str]]:
    """Properties of a JSON Schema (at any depth) whose names ask for a secret: (path of the name, name)."""
    if isinstance(schema, dict):
        properties = schema.get("properties")
        if isinstance(properties, dict):
            for name in properties:
                if isinstance(name, str) and is_secret_name(name):
                    yield (*path, "properties", name), name
        for key, value in schema.items():
            yield from schema_secret_properties(value, (*path, key))
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from schema_secret_properties(value, (*path, index))
