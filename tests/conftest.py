"""Test-session setup shared by every test package.

The reference `openai_harmony` (our oracle) can only load its vocabulary offline from a directory
named by TIKTOKEN_ENCODINGS_BASE, so the session writes the verified o200k_base file there first.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from harmony._vocab import write_verified_vocab

pytest_plugins = ["tests.support.engine_fixtures", "tests.support.server_fixtures"]

if "TIKTOKEN_ENCODINGS_BASE" not in os.environ:
    _vocab_dir = Path(tempfile.gettempdir()) / "harmony-proxy-tests-vocab"
    write_verified_vocab(_vocab_dir)
    os.environ["TIKTOKEN_ENCODINGS_BASE"] = str(_vocab_dir)
