"""The method table: the manifest names exactly what the area modules define, and the lazy table the session
serves holds the same methods as the full one while importing an area only when one of its methods is used."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

import asrpro_rpc.methods as methods_package
from asrpro_rpc.methods import MANIFEST, MethodTable, all_methods, area_methods
from asrpro_rpc.methods.openrpc import render


def test_manifest_matches_what_the_area_modules_define() -> None:
    defining = {
        info.name
        for info in pkgutil.iter_modules(methods_package.__path__)
        if hasattr(importlib.import_module(f"asrpro_rpc.methods.{info.name}"), "METHODS")
    }
    assert defining == set(MANIFEST), "an area module is missing from methods.MANIFEST, or listed but gone"
    for area, names in MANIFEST.items():
        assert tuple(m.name for m in area_methods(area)) == names, f"methods.MANIFEST[{area!r}] is stale"
    everything = [m.name for m in all_methods()]
    assert len(everything) == len(set(everything)), "a method name is declared twice"


def test_the_lazy_table_holds_every_method_of_the_full_one() -> None:
    table = MethodTable()
    full = {m.name: m for m in all_methods()}
    assert list(table) == list(full) and len(table) == len(full)
    assert all(name in table for name in full) and "nope" not in table and table.get("nope") is None
    assert all(table[name] is method for name, method in full.items())
    assert render(list(table.values())) == render(all_methods())  # rpc.discover's document, unchanged


def test_the_lazy_table_imports_an_area_on_its_first_lookup() -> None:
    code = (
        "import sys; from asrpro_rpc.methods import MethodTable; table = MethodTable();"
        "loaded = lambda: sorted(m for m in sys.modules if m.startswith('asrpro_rpc.methods.'));"
        "before = loaded(); names = sorted(table); 'models.list' in table; table['initialize'];"
        "after_initialize = loaded(); table['models.list'];"
        "import json; print(json.dumps([before, after_initialize, loaded()]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    before, after_initialize, after_models = json.loads(out)
    assert before == ["asrpro_rpc.methods.base"]
    assert after_initialize == ["asrpro_rpc.methods.base", "asrpro_rpc.methods.lifecycle"]
    assert "asrpro_rpc.methods.models" in after_models and "asrpro_rpc.methods.audio" not in after_models
