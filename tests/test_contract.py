"""The method contract: every option is honoured or refused, the table is the one list of methods, the harness reads
declarations (no hasattr/getattr on a method), and source artifacts are keyed by the code they run."""
import ast
import re
import contextlib
import io
from pathlib import Path

import pytest
import torch

import ttpt.harness.identity
from ttpt.cli import main, method_settings, parser
from ttpt.harness.protocol import Method
from ttpt.registry import METHODS, STANDARD, TABLE, check_settings, make_method, takers
from ttpt.harness.setup import Setup
from test_platform import library_modules

PACKAGE = Path(ttpt.harness.identity.__file__).parents[1]
HARNESS = tuple(m.removeprefix("ttpt.") for m in library_modules("harness")) + ("compare", "registry", "cli") # the harness layer and the top layer that drives it
METHOD_MODULES = tuple(m.removeprefix("ttpt.") for m in library_modules("methods"))


def _refusals():
    "(setting, a method that does not take it) for every setting: each kind of option (method or source stage; int, float, str)."
    return [(name, next(e.name for e in TABLE if name not in e.settings())) for name in method_settings()]


@pytest.mark.parametrize("setting,method", _refusals())
def test_an_option_a_method_does_not_take_is_refused(setting, method):
    with pytest.raises(ValueError, match=re.escape(f"is not a setting of {method}; it applies to {', '.join(takers(setting))}")):
        check_settings([method], {setting: 1})


def test_the_command_line_refuses_in_one_line_before_loading_a_model():
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit):
        main(["eval", "--method", "zero", "--dataset", "hard", "--sapt-rho", "0.3", "--model", "no-such-model"])
    assert err.getvalue() == "ttpt: error: --sapt-rho is not a setting of zero; it applies to sapt, tlla\n"


def test_compare_applies_a_setting_to_the_methods_that_take_it(clip, tmp_path):
    setup = Setup(clip, source_dir=tmp_path, settings={"n_views": 16})
    check_settings(["zeroshot", "zero"], setup.settings) # zero takes it: accepted
    assert make_method("zero", setup).n_views == 16 and make_method("zeroshot", setup).config() == make_method("zeroshot", Setup(clip)).config()


def test_metatpt_runs_the_views_asked_for(clip, tmp_path):
    "`--views 16` for MetaTPT: 16 views meta-learned and run, and its fingerprint records 16."
    method = make_method("metatpt", Setup(clip, source_dir=tmp_path, progress=False, settings={"n_views": 16, "meta_shots": 1, "meta_epochs": 1}))
    assert (method.n_views, tuple(method.augment_init.shape), method.config()["n_views"]) == (16, (15, 5), 16)
    assert METHODS["metatpt"].settings()["n_views"].default == 32


def test_the_table_is_the_one_list_of_methods():
    "The registry, the command line's choices and the comparison's order all come from TABLE; no module keeps its own list."
    assert list(METHODS) == [e.name for e in TABLE]
    assert [m for m in METHODS if m in STANDARD] == list(STANDARD) # the default comparison in table order
    compare_parser = parser()._subparsers._group_actions[0].choices["compare"]
    choices = next(a for a in compare_parser._actions if a.dest == "methods").choices
    assert list(choices) == list(METHODS)
    for module in PACKAGE.rglob("[!_]*.py"):
        if module.stem == "registry": continue
        lists = [ast.unparse(n) for n in ast.walk(ast.parse(module.read_text())) if isinstance(n, (ast.List, ast.Tuple, ast.Set))
                 and sum(isinstance(e, ast.Constant) and e.value in METHODS for e in n.elts) >= 2]
        assert not lists, f"{module.name} keeps a list of methods: {lists}"


def test_every_method_class_declares_its_kind():
    for entry in TABLE:
        cls = entry.method_class()
        assert issubclass(cls, Method) and cls.capabilities.kind is not None, entry.name


def _calls(module, names):
    "Calls in `module` of the builtins `names` whose first argument is a variable called `method` or `m`."
    tree = ast.parse((PACKAGE/f"{module.replace('.', '/')}.py").read_text())
    return [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in names
            and n.args and isinstance(n.args[0], ast.Name) and n.args[0].id in ("method", "m")]


@pytest.mark.parametrize("module", HARNESS)
def test_the_harness_asks_no_method_what_it_has(module):
    assert _calls(module, ("hasattr", "getattr")) == []


@pytest.mark.parametrize("module", METHOD_MODULES)
def test_no_method_module_registers_itself(module):
    source = (PACKAGE/f"{module.replace('.', '/')}.py").read_text()
    assert "ttpt.registry" not in source and "register(" not in source


def test_source_artifacts_are_keyed_by_the_code_they_run(clip, tmp_path, monkeypatch):
    "Editing the command line or the reports retrains nothing; editing the source stage's loss retrains it."
    setup = Setup(clip, source_dir=tmp_path, progress=False, settings={"shots": 1, "coop_epochs": 1})
    first = make_method("coop", setup).context
    digest = ttpt.harness.identity._source_digest
    def edited(*modules):
        return lambda module: "edited" if module.__name__ in modules else digest(module)
    monkeypatch.setattr(ttpt.harness.identity, "_source_digest", edited("ttpt.cli", "ttpt.harness.reports", "ttpt.compare", "ttpt.registry"))
    assert torch.equal(make_method("coop", setup).context, first) and len(list(tmp_path.glob("coop-*.safetensors"))) == 1
    monkeypatch.setattr(ttpt.harness.identity, "_source_digest", edited("ttpt.core.source"))
    make_method("coop", setup)
    assert len(list(tmp_path.glob("coop-*.safetensors"))) == 2 # trained again by the edited loss's code
