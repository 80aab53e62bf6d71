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



def test_a_compile_does_not_scan_installed_distributions_for_pydantic_plugins() -> None:
    """pydantic looks for plugins in the entry points of every installed distribution on its first validation
    (20-80 ms with the runtime extras installed); the CLI turns that off unless the user set the variable."""
    probe = """
import importlib.metadata, json, os
scans = []
real = importlib.metadata.entry_points
importlib.metadata.entry_points = lambda *a, **k: scans.append(1) or real(*a, **k)
from llmops_compiler.cli import main
try:
    main(["validate", "%s", "--no-cache"])
except SystemExit as done:
    code = done.code
print(json.dumps({"code": code, "scans": len(scans), "setting": os.environ.get("PYDANTIC_DISABLE_PLUGINS")}))
"""
    from project_paths import EXAMPLE_SPECS

    assert _fresh(probe % EXAMPLE_SPECS) == {"code": 0, "scans": 0, "setting": "__all__"}
