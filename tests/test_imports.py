"""The data reader and the synthetic generator load neither torch nor the env modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

#: Modules that importing the data and synthetic packages must not load.
HEAVY_MODULES = (
    "torch", "mura_env.env", "mura_env.vector_env", "mura_env.problem", "mura_env.logits",
    "mura_env.rewards", "mura_env.mapping", "mura_env.config", "mura_env.study_set",
)


def _loaded_after(statement: str) -> list[str]:
    """The modules of :data:`HEAVY_MODULES` loaded by ``statement`` in a fresh interpreter."""
    code = (f"import json, sys\n{statement}\n"
            f"print(json.dumps([m for m in {list(HEAVY_MODULES)!r} if m in sys.modules]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[1])
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("statement", [
    "import mura_env.data, mura_env.synthetic",
    "from mura_env.data import load_mura",
    "import mura_env.synthetic.dataset",
])
def test_data_and_synthetic_imports_load_no_env_module_nor_torch(statement: str) -> None:
    assert _loaded_after(statement) == []


def test_the_check_sees_a_heavy_module_when_one_is_loaded() -> None:
    assert "mura_env.logits" in _loaded_after("import mura_env.logits")
