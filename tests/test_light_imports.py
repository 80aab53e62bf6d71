"""Libraries the compile path needs only in part are loaded only in part (each checked in a fresh process)."""

from __future__ import annotations

import json
import subprocess
import sys


def _fresh(code: str) -> dict[str, object]:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_secret_detection_does_not_load_requests_until_something_uses_it() -> None:
    probe = """
import json, sys
from llmops_compiler.credentials import credential_types
found = credential_types("ghp_" + "a" * 36) + credential_types("https://user:pass@example.com/x")
before = [name for name in ("urllib3", "charset_normalizer", "requests.sessions") if name in sys.modules]
import requests
import importlib.util
real = requests.Session.__module__
print(json.dumps({"found": found, "before": before, "real": real,
                  "spec": importlib.util.find_spec("requests").name,
                  "after": "urllib3" in sys.modules}))
"""
    seen = _fresh(probe)
    assert seen == {"found": ["GitHub Token", "Basic Auth Credentials"], "before": [], "real": "requests.sessions",
                    "spec": "requests", "after": True}

