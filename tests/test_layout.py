"""The package layout the README promises: dependencies point one way, no hidden cycles, a cheap import.

    tokenizer  <-  data_prep  <-  evaluation  <-  training  <-  tts

A package may import the ones to its left, never one to its right, and never one of ours from inside a
function (the way cycles used to be hidden). Third-party imports inside functions are fine (optional
backends, heavy libraries only some commands need).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["tokenizer", "data_prep", "evaluation", "training", "tts"]


def _modules():
    for package in ORDER:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield package, path


def _target(node: ast.AST, path: Path) -> str | None:
    """Top-level package of one of ours that an import statement names (relative imports resolved)."""
    if isinstance(node, ast.Import):
        names = [a.name.split(".")[0] for a in node.names]
        ours = [n for n in names if n in ORDER]
        return ours[0] if ours else None
    if isinstance(node, ast.ImportFrom):
        if node.level:  # relative: stays inside the package the file lives in
            return path.relative_to(ROOT).parts[0]
        head = (node.module or "").split(".")[0]
        return head if head in ORDER else None
    return None


def _imports(path: Path):
    """(target package, line, inside a function?) for each import of one of our packages."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            target = _target(child, path)
            if target:
                found.append((target, child.lineno, in_function))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    visit(tree, False)
    return found


def test_dependencies_point_one_way():
    upward = []
    for package, path in _modules():
        for target, line, _ in _imports(path):
            if ORDER.index(target) > ORDER.index(package):
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not upward, "imports against tokenizer <- data_prep <- evaluation <- training <- tts:\n" + "\n".join(upward)


def test_no_import_of_our_packages_inside_functions():
    hidden = [f"{path.relative_to(ROOT)}:{line} imports {target} inside a function"
              for _, path in _modules() for target, line, inside in _imports(path) if inside]
    assert not hidden, "\n".join(hidden)


def _fresh(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_import_tokenizer_loads_no_codec_family_nor_torch():
    out = _fresh("import sys, tokenizer; print(sorted(m for m in sys.modules if m.startswith(('torch', "
                 "'tokenizer.codecs', 'constriction', 'accelerate', 'transformers'))))")
    assert out.strip() == "[]", out


def test_auto_tokenizer_loads_only_the_family_it_needs():
    code = ("import sys; from tokenizer import AutoCodecConfig, AutoCodecTokenizer, list_codecs; list_codecs(); "
            "AutoCodecTokenizer.from_config(AutoCodecConfig.for_model('language-codec', preset='tiny')); "
            "print(sorted(m for m in sys.modules if m.startswith(('tokenizer.codecs.rate_aware.modeling', "
            "'tokenizer.codecs.stable_codec.modeling', 'constriction', 'training', 'data_prep', 'evaluation'))))")
    assert _fresh(code).strip() == "[]"


@pytest.mark.parametrize("name", ["StableCodecTokenizer", "RateAwareTokenizer"])
def test_family_tokenizer_refuses_another_family(name, tmp_path):
    from tokenizer import AutoCodecConfig, AutoCodecTokenizer, ConfigError
    from tokenizer.registry import CODECS

    cls = {"StableCodecTokenizer": CODECS["stable_codec"], "RateAwareTokenizer": CODECS["rate_aware"]}[name].tokenizer_class
    config = AutoCodecConfig.for_model("language-codec", preset="tiny")
    with pytest.raises(ConfigError, match="AutoCodecTokenizer"):
        cls.from_config(config)
    AutoCodecTokenizer.from_config(config).save_pretrained(tmp_path / "lc")
    with pytest.raises(ConfigError, match="language_codec"):
        cls.from_pretrained(tmp_path / "lc")


def test_from_config_and_from_pretrained_build_cls(tmp_path):
    from tokenizer import AutoCodecConfig, AutoCodecTokenizer, CodecTokenizer
    from tokenizer.registry import CODECS

    stable = CODECS["stable_codec"].tokenizer_class
    config = AutoCodecConfig.for_model("stable-codec", preset="tiny")
    assert type(stable.from_config(config)) is stable
    assert type(CodecTokenizer.from_config(config)) is CodecTokenizer  # the base class wraps any family
    assert type(AutoCodecTokenizer.from_config(config)) is stable     # only the Auto class dispatches
    stable.from_config(config).save_pretrained(tmp_path / "sc")
    assert type(CodecTokenizer.from_pretrained(tmp_path / "sc")) is CodecTokenizer
    assert type(AutoCodecTokenizer.from_pretrained(tmp_path / "sc")) is stable


def test_builtin_name_without_weights_needs_random_weights():
    from tokenizer import AutoCodecTokenizer, ConfigError

    with pytest.raises(ConfigError, match="no trained stable-codec weights.*random_weights"):
        AutoCodecTokenizer.from_pretrained("stable-codec")
    tok = AutoCodecTokenizer.from_pretrained("rate-aware", random_weights=True)
    assert tok.name == "rate_aware"


def test_weights_digest_distinguishes_checkpoints_of_one_preset():
    from tokenizer import AutoCodecConfig, AutoCodecTokenizer

    config = AutoCodecConfig.for_model("language-codec", preset="tiny")
    a, b = AutoCodecTokenizer.from_config(config, seed=0), AutoCodecTokenizer.from_config(config, seed=1)
    assert a.config_hash == b.config_hash                      # same architecture...
    assert a.weights_digest != b.weights_digest                # ...other weights
    assert a.codec_info()["weights_digest"] == a.weights_digest
    assert AutoCodecTokenizer.from_config(config, seed=0).weights_digest == a.weights_digest
    with __import__("torch").no_grad():
        next(a.model.parameters()).add_(1.0)
    assert a.weights_digest != AutoCodecTokenizer.from_config(config, seed=0).weights_digest  # cache follows edits
