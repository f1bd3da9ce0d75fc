"""`serve` with TLS settings it cannot use stops at once with the reason, before listening."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import write_config


def test_serve_with_a_missing_certificate_exits_1_naming_the_setting(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"server": {"port": 0, "tls_cert_file": "missing.crt",
                                              "tls_key_file": "missing.key"}})
    code = ("from router.cli import main; "
            f"raise SystemExit(main(['serve', '--config', {str(path)!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 1
    assert "invalid TLS settings (server.tls_*)" in done.stderr
    assert "No such file" in done.stderr
