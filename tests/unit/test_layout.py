"""The layout's floors hold (``tests/unit/layout_check.py``), and the check can fail."""

from __future__ import annotations

from pathlib import Path

from tests.unit.layout_check import Layout


def test_the_tree_has_no_layout_violation() -> None:
    assert Layout().violations() == []


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_check_reports_each_kind_of_violation(tmp_path: Path) -> None:
    _write(tmp_path, "ece/__init__.py", "")
    _write(tmp_path, "ece/settings.py", "from api.users import models\n")
    _write(tmp_path, "api/__init__.py", "")
    _write(tmp_path, "api/core/__init__.py", "")
    _write(tmp_path, "api/core/db.py", "from api.users.models import User\n")
    _write(tmp_path, "api/users/__init__.py", "")
    _write(tmp_path, "api/users/models.py", "from ops import seed\n" + "x = 1\n" * 401)
    _write(tmp_path, "ops/__init__.py", "")
    _write(tmp_path, "ops/seed.py", "import ops.demo\n")
    _write(tmp_path, "ops/demo.py", "from ops.seed import x\n")
    _write(tmp_path, "ops/platform.py", "")

    found = Layout(tmp_path).violations()

    assert "ece/settings.py: the foundation imports api.users.models" in found
    assert "api/core/db.py: api/core imports api.users.models" in found
    assert "api/users/models.py: imports the operations floor (ops.seed)" in found
    assert "api/users/models.py: 402 lines (over 400)" in found
    assert "ops/platform.py: module name 'platform' shadows the standard library" in found
    assert "import cycle: ops.demo -> ops.seed" in found
    assert len(found) == 6


def test_type_checking_imports_and_package_inits_are_not_cycles(tmp_path: Path) -> None:
    _write(tmp_path, "api/__init__.py", "")
    _write(tmp_path, "api/a/__init__.py", "from api.a.b import thing\n")
    _write(tmp_path, "api/a/b.py", "import api.a\nthing = 1\n")
    _write(tmp_path, "api/c.py", "from typing import TYPE_CHECKING\n"
                                 "if TYPE_CHECKING:\n    from api.d import y\n")
    _write(tmp_path, "api/d.py", "from api.c import TYPE_CHECKING\n")

    assert Layout(tmp_path).violations() == []
