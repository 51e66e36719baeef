"""Image and key-rotation tests reuse the API test fixtures (``tests/api/conftest.py``).

They are loaded from that file, not copied, so an app/client/admin fixture change
there applies here too; ``apitest`` (the shared helpers) is made importable.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

API_TESTS = Path(__file__).resolve().parent.parent / "api"
if str(API_TESTS) not in sys.path:
    sys.path.insert(0, str(API_TESTS))

_spec = importlib.util.spec_from_file_location("_api_test_fixtures", API_TESTS / "conftest.py")
assert _spec is not None and _spec.loader is not None
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)

api_settings = _fixtures.api_settings
app = _fixtures.app
client = _fixtures.client
db = _fixtures.db
user = _fixtures.user
admin = _fixtures.admin
