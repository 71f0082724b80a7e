"""Every Python example in README.md runs as written (so the README cannot rot)."""
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_an_example_per_capability():
    text = "\n".join(BLOCKS)
    for name in ("js.Diffusion", "js.CG(js.Multigrid())", "js.Tsit5()", "js.SDEProblem",
                 "js.gradient", "js.fit"):
        assert name in text, name


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_example_runs(i, tmp_path, monkeypatch):
    """The block runs to the end; its own asserts (dot-product test, ...) are checked."""
    monkeypatch.chdir(tmp_path)
    ns = {"__name__": f"readme_example_{i}"}
    exec(compile(BLOCKS[i], f"README.md example {i}", "exec"), ns)
    assert "prob" in ns      # every example builds a problem; reaching here means it ran
