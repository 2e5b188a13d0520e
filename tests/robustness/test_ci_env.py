"""Bad environments refused by the optional integrations (room ci-env): typed errors whose message names the fix."""

import importlib
import importlib.util
import sys

import pytest

from torchgeo_smarties.errors import MissingExtraError


# class: the TerraTorch plugin imported where TerraTorch is missing or broken (e.g. next to torchgeo 0.10)
def test_terratorch_plugin_without_working_terratorch(monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec('terratorch') is not None:
        # A None entry in sys.modules makes `import terratorch` raise ImportError, as a broken install does.
        monkeypatch.setitem(sys.modules, 'terratorch', None)
    monkeypatch.delitem(sys.modules, 'torchgeo_smarties.integrations.terratorch', raising=False)
    with pytest.raises(MissingExtraError, match=r'TerraTorch 1\.2\.x needs torchgeo<0\.10.*scripts/terratorch_env\.sh'):
        importlib.import_module('torchgeo_smarties.integrations.terratorch')
