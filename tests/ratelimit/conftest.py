"""Rate-limit tests reuse the API test fixtures (``tests/api/conftest.py``) and helpers
(``apitest``), loaded by path because test folders are not packages."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

API_TESTS = Path(__file__).resolve().parents[1] / "api"


def _api_fixtures() -> ModuleType:
    if str(API_TESTS) not in sys.path:
        sys.path.insert(0, str(API_TESTS))  # for `import apitest`
    name = "tests_api_fixtures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, API_TESTS / "conftest.py")
        assert spec is not None and spec.loader is not None
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


_fx = _api_fixtures()
api_settings = _fx.api_settings
app = _fx.app
db = _fx.db
