"""The documentation runs: every ```python block of README.md and docs/**/*.md, and the site build.

Each block runs as a script of its own, in a fresh namespace and a temporary folder, with a
time limit, in a worker interpreter that the tests share (so that NumPy and fastrnn load
once); a block that overruns its time ends the worker and the next block starts another. HTML
comments just before a block (blank lines between are fine) change how it runs:

- ``<!-- test: skip -->``: a fragment, not run;
- ``<!-- test: requires keras torch -->``: skipped unless each module can be imported;
- ``<!-- test: continue -->``: runs after the blocks before it on the page, as one script
  (for a page whose examples build on each other);
- ``<!-- test: setup ... -->``: the Python code after ``setup`` runs first, unseen on the page
  (e.g. to make the file an example loads).

The public layers' signatures name their options (no ``**kwargs``), and ``py.typed`` ships.
"""
from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import selectors
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
TIME_LIMIT = 120  # seconds for one block; the examples take a second or two
_MARKER = re.compile(r"<!--\s*test:\s*(\w+)(.*?)-->", re.S)

# The worker reads one JSON request a line ({"script", "cwd"}) and answers one a line on the
# descriptor it was given; the blocks' own output, Python's and C's, goes to stderr.
_WORKER = r"""
import io, json, os, sys, traceback
answers = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = sys.stderr
for request in sys.stdin:
    request = json.loads(request)
    os.chdir(request["cwd"])
    try:
        exec(compile(request["script"], "block.py", "exec"), {"__name__": "__main__"})
        answer = {"ok": True}
    except BaseException:
        answer = {"ok": False, "error": traceback.format_exc()}
    answers.write(json.dumps(answer) + "\n")
    answers.flush()
"""


class Worker:
    """An interpreter that runs scripts on request (see ``_WORKER``)."""

    def __init__(self):
        env = {**os.environ, "MPLBACKEND": "Agg", "KERAS_BACKEND": "torch"}
        self.process = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True, env=env, cwd=ROOT)

    def run(self, script: str, cwd: Path) -> dict:
        self.process.stdin.write(json.dumps({"script": script, "cwd": str(cwd)}) + "\n")
        self.process.stdin.flush()
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(TIME_LIMIT):
                self.close()
                return {"ok": False, "error": f"still running after {TIME_LIMIT} s"}
        line = self.process.stdout.readline()
        if not line:
            self.close()
            return {"ok": False, "error": "the interpreter died"}
        return json.loads(line)

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


@dataclass
class Block:
    page: str
    line: int
    code: str
    skip: bool = False
    requires: list[str] = field(default_factory=list)
    setup: str = ""
    continues: bool = False

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"


def extract_blocks(text: str, page: str) -> list[Block]:
    """The ```python blocks of a Markdown text, each with the test markers just before it."""
    blocks, markers = [], []
    lines = text.splitlines()
    k = 0
    while k < len(lines):
        line = lines[k]
        if line.strip().startswith("<!--"):
            end = k
            while "-->" not in lines[end]:
                end += 1
            markers += _MARKER.findall("\n".join(lines[k:end + 1]))
            k = end + 1
            continue
        if line.strip() == "```python":
            end = k + 1
            while lines[end].strip() != "```":
                end += 1
            block = Block(page, k + 1, "\n".join(lines[k + 1:end]) + "\n")
            for kind, rest in markers:
                _apply_marker(block, kind, rest)
            blocks.append(block)
            markers, k = [], end + 1
            continue
        if line.strip():
            markers = []  # a marker belongs to the block right after it
        k += 1
    return blocks


def _apply_marker(block: Block, kind: str, rest: str) -> None:
    if kind == "skip":
        block.skip = True
    elif kind == "requires":
        block.requires += rest.split()
    elif kind == "continue":
        block.continues = True
    elif kind == "setup":
        block.setup += inspect.cleandoc(rest) + "\n"
    else:
        raise ValueError(f"{block.name}: unknown test marker {kind!r}")


def scripts() -> list:
    """One pytest param per block that runs: its script (with the blocks it continues)."""
    params = []
    for path in PAGES:
        page = str(path.relative_to(ROOT))
        chain: list[Block] = []
        for block in extract_blocks(path.read_text(encoding="utf-8"), page):
            chain = chain + [block] if block.continues else [block]
            if block.skip:
                continue
            params.append(pytest.param(chain, id=block.name))
    return params


@pytest.fixture(scope="module")
def worker():
    workers = [Worker()]

    def get() -> Worker:
        if not workers[-1].alive():
            workers.append(Worker())
        return workers[-1]

    yield get
    workers[-1].close()


@pytest.mark.parametrize("chain", scripts())
def test_code_block_runs(chain, tmp_path, worker):
    missing = [m for b in chain for m in b.requires if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    script = "".join(b.setup + b.code for b in chain)
    answer = worker().run(script, tmp_path)
    assert answer["ok"], f"{chain[-1].name} failed:\n{script}\n{answer['error']}"


def test_extractor_reads_markers():
    text = """
<!-- test: requires onnx -->
<!-- test: setup
x = 1
-->

```python
print(x)
```
Some words.
<!-- test: skip -->
```python
fragment(
```
<!-- test: continue -->
```python
y = x
```
"""
    first, second, third = extract_blocks(text, "page.md")
    assert first.requires == ["onnx"] and first.setup == "x = 1\n" and first.code == "print(x)\n"
    assert first.line == 7 and not first.skip
    assert second.skip and not second.requires and not second.setup
    assert third.continues and not third.skip


def test_marker_is_dropped_when_text_follows_it():
    blocks = extract_blocks("<!-- test: skip -->\nText.\n```python\npass\n```\n", "page.md")
    assert not blocks[0].skip


def test_pages_have_examples():
    readme = extract_blocks((ROOT / "README.md").read_text(encoding="utf-8"), "README.md")
    assert len(readme) >= 3 and not any(b.skip for b in readme)
    assert len(scripts()) >= 20


def test_unknown_marker_raises():
    with pytest.raises(ValueError, match="unknown test marker 'skp'"):
        extract_blocks("<!-- test: skp -->\n```python\npass\n```\n", "page.md")


def test_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 210
    commands = ('pip install . && fastrnn                        # build, install, and check the '
                'kernels against the NumPy reference here\n'
                'pip install ".[test]" && python -m pytest       # build, install with the test '
                'tools, and run the test suite\n')
    assert text.startswith("# fastrnn\n\n```bash\n" + commands + "```\n")


def test_site_builds_with_warnings_as_errors(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    pytest.importorskip("material")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=ROOT, text=True, capture_output=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "api" / "layers" / "index.html").is_file()


def test_layer_signatures_name_their_options():
    from fastrnn import layers

    # InputLayer is what Input() makes; it is not built by hand in Keras code.
    public = [getattr(layers, n) for n in layers.__all__ if n != "InputLayer"]
    for obj in public:
        if callable(obj):
            signature = str(inspect.signature(obj))
            assert "**" not in signature, f"{obj.__name__}{signature}"
    lstm = inspect.signature(layers.LSTM).parameters
    assert {"return_sequences", "dropout", "stateful", "name", "dtype"} <= set(lstm)
    assert "return_sequences" in layers.LSTM.__doc__


def test_package_says_it_is_typed():
    from importlib.resources import files

    assert files("fastrnn").joinpath("py.typed").is_file()
    hints = inspect.signature(__import__("fastrnn.ops").ops.rnn_forward).parameters
    assert hints["x"].annotation == "np.ndarray"
