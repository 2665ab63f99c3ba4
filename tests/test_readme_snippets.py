"""The README's code runs: its snippets are executed here, so the README cannot drift from the library.

* Every ```python block of README.md runs as a script in a subprocess of its own, in a fresh temporary
  directory, with a timeout: an undefined name, a renamed function or a changed signature fails the test,
  and the traceback points at the README's own line numbers.
* Every ``reflect ...`` command in a ```bash block is parsed (not run) by ``reflect``'s own argument
  parser, so a renamed or removed option fails; every ``python some/script.py`` the README mentions must
  exist, and so must every file a relative link points to; the ```yaml sweep spec is checked as
  ``reflect sweep SPEC --dry-run`` checks it.
* The "Bad input" table is replayed: ``reflect train`` with each row's input must fail with exit status 2
  and the row's message on one line; argparse's usage errors are held to that one line here too.

**Step counts.** Snippets are written for users (``learn(50_000)``, ``range(10_000)``). The runner divides
the number in each of these places by ``README_SNIPPET_SCALE`` (default 1000, keeping at least 1), see
``SHRINK``; the README itself is never edited for the test:

    learn(N    range(N)    total_timesteps=N    steps=N    <name>_freq=N    log_interval=N
    <name>_s=N  (seconds: duration_s, checkpoint_every_s)

``README_SNIPPET_SCALE=1`` runs them as written (minutes; raise the timeout with
``README_SNIPPET_TIMEOUT``).

**Markers.** An HTML comment directly above a block (invisible in the rendered README) changes how it
runs; several may be stacked:

    <!-- snippet: skip (needs a robot) -->    not run; the reason is the skip message
    <!-- snippet: slow -->                    run only with ``-m slow`` (takes more than a few seconds)
    <!-- snippet: setup
    code run before the block in the same process: stand-ins for what the prose says the reader has
    (a robot, an exported file), never for names the block itself should define
    -->
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from reflect.cli import build_parser, main

README = Path(__file__).resolve().parent.parent / "README.md"
SCALE = int(os.environ.get("README_SNIPPET_SCALE", "1000"))
TIMEOUT = float(os.environ.get("README_SNIPPET_TIMEOUT", "180"))

#: Where a snippet's user-scale numbers are shrunk: the number after one of these is divided by SCALE.
SHRINK = re.compile(
    r"(?P<key>\blearn\(|\brange\(|\btotal_timesteps=|\bsteps=|\b\w+_freq=|\blog_interval=|\b\w+_s=)"
    r"(?P<number>\d[\d_]*)"
)
BLOCK = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<code>.*?)^```$", re.M | re.S)
#: The last ``<!-- snippet: ... -->`` comment of a text that ends right after it.
MARKER = re.compile(r"<!--\s*snippet:\s*(?P<body>(?:(?!-->).)*?)\s*-->\n\Z", re.S)
HEADING = re.compile(r"^#{2,4} (?P<title>.+)$", re.M)
SKIP = re.compile(r"skip\s*\((?P<reason>[^)]+)\)")


@dataclass
class Snippet:
    """One fenced code block of a Markdown file, with the markers written above it."""

    lang: str
    code: str
    line: int  # 1-based line of the block's first code line
    section: str
    skip: str | None = None
    slow: bool = False
    setup: str = ""
    markers: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """A test id: the line and the section, ``line211-python-api``."""
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-")
        return f"line{self.line}-{slug}"


def parse_snippets(text: str) -> list[Snippet]:
    """Every fenced block of ``text`` with its markers.

    Raises:
        ValueError: a marker that is unknown, or that is not directly above a block.
    """
    snippets = []
    attached = 0
    for match in BLOCK.finditer(text):
        before = text[: match.start()]
        headings = HEADING.findall(before)
        snippet = Snippet(
            lang=match["lang"],
            code=match["code"],
            line=before.count("\n") + 2,
            section=headings[-1] if headings else "top",
        )
        while (marker := MARKER.search(before)) is not None:
            body = marker["body"]
            snippet.markers.append(body)
            if body == "slow":
                snippet.slow = True
            elif body.startswith("setup\n"):
                snippet.setup = textwrap.dedent(body[len("setup\n"):]) + "\n" + snippet.setup
            elif (skip := SKIP.fullmatch(body)) is not None:
                snippet.skip = skip["reason"].strip()
            else:
                raise ValueError(f"line {snippet.line}: unknown snippet marker {body!r}; "
                                 "use skip (reason), slow or setup")
            before = before[: marker.start()]
        attached += len(snippet.markers)
        snippets.append(snippet)
    written = len(re.findall(r"^<!--\s*snippet:", text, re.M))  # a marker starts its line
    if written != attached:
        raise ValueError(f"{written - attached} snippet marker(s) are not directly above a code block")
    return snippets


def shrink(code: str, scale: int = SCALE) -> str:
    """``code`` with the number after each ``SHRINK`` key divided by ``scale`` (at least 1 is kept)."""

    def smaller(match: re.Match[str]) -> str:
        number = int(match["number"].replace("_", ""))
        return f"{match['key']}{max(1, number // scale)}"

    return SHRINK.sub(smaller, code)


def run_snippet(
    snippet: Snippet, directory: Path, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run a Python snippet (its setup first) in a new interpreter inside ``directory``.

    The block is compiled under the README's path with its README line numbers, so a traceback names the
    README line that failed.
    """
    (directory / "snippet_setup.py").write_text(snippet.setup)
    (directory / "snippet.py").write_text("\n" * (snippet.line - 1) + shrink(snippet.code))
    runner = (
        "import sys\n"
        "namespace = {'__name__': '__main__'}\n"
        "exec(compile(open('snippet_setup.py').read(), 'snippet setup', 'exec'), namespace)\n"
        f"exec(compile(open('snippet.py').read(), {str(README)!r}, 'exec'), namespace)\n"
    )
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-c", runner], cwd=directory, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


SNIPPETS = parse_snippets(README.read_text())
PYTHON = [
    pytest.param(s, id=s.name, marks=[pytest.mark.slow] if s.slow else [])
    for s in SNIPPETS if s.lang == "python"
]


@pytest.mark.parametrize("snippet", PYTHON)
def test_python_snippet_runs(snippet: Snippet, tmp_path: Path) -> None:
    if snippet.skip is not None:
        pytest.skip(f"README.md line {snippet.line} ({snippet.section}): {snippet.skip}")
    try:
        result = run_snippet(snippet, tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"README.md line {snippet.line} ({snippet.section}) ran longer than {TIMEOUT:.0f} s")
    assert result.returncode == 0, (
        f"README.md line {snippet.line} ({snippet.section}) failed:\n{result.stderr[-4000:]}\n"
        f"as run (numbers shrunk):\n{snippet.setup}{shrink(snippet.code)}"
    )


def command_lines(code: str) -> list[list[str]]:
    """The commands of a shell block: one token list per command (``&&``, ``;`` and ``|`` split them)."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        tokens = shlex.split(line, comments=True)
        current: list[str] = []
        for token in [*tokens, ";"]:
            if token in {"&&", "||", ";", "|"}:
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(token)
    return commands


def parser_problems(code: str) -> list[str]:
    """The ``reflect ...`` commands of a shell block that ``reflect``'s parser refuses, with its message."""
    problems = []
    for command in command_lines(code):
        if command[0] != "reflect":
            continue
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr):
                build_parser().parse_args(command[1:])
        except SystemExit as stop:
            if stop.code != 0:
                problems.append(f"{shlex.join(command)}: {stderr.getvalue().strip()}")
    return problems


BASH = [pytest.param(s, id=s.name) for s in SNIPPETS if s.lang == "bash"]


@pytest.mark.parametrize("snippet", BASH)
def test_reflect_commands_in_shell_blocks_parse(snippet: Snippet) -> None:
    assert not parser_problems(snippet.code), (
        f"README.md line {snippet.line} ({snippet.section}): options the parser does not know:\n"
        + "\n".join(parser_problems(snippet.code))
    )


def test_scripts_the_readme_names_exist() -> None:
    scripts = set(re.findall(r"\bpython3? (?:-m \S+ )?((?:[\w.-]+/)*[\w.-]+\.py)\b", README.read_text()))
    assert scripts, "the pattern no longer finds the README's scripts"
    missing = sorted(s for s in scripts if not (README.parent / s).is_file())
    assert not missing, f"README.md names scripts that do not exist: {missing}"


def test_relative_links_of_the_readme_exist() -> None:
    targets = re.findall(r"\]\((?!https?://|#)([^)\s]+)\)", README.read_text())
    assert targets
    missing = sorted(t for t in targets if not (README.parent / t).exists())
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_sweep_spec_block_passes_the_dry_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = [s for s in SNIPPETS if s.lang == "yaml" and "search:" in s.code]
    assert len(specs) == 1, "expected the one sweep spec block of the README"
    (tmp_path / "my_sweep.yaml").write_text(specs[0].code)
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "my_sweep.yaml", "--dry-run"]) == 0, capsys.readouterr().err
    assert "trials" in capsys.readouterr().out


#: A row of the README's "Bad input" table whose input is one code span (maybe with a parenthesis after
#: it) and whose message is one code span; ``...`` in the message stands for text left out.
BAD_INPUT_ROW = re.compile(r"^\| `(?P<input>--[^`]+)`(?: \([^)`|]*\))? \| `(?P<message>[^`]+)` \|$", re.M)


def abridged_in(message: str, text: str) -> bool:
    """Whether ``text`` holds the parts of ``message`` between its ``...`` in order."""
    position = 0
    for part in message.split("..."):
        found = text.find(part, position)
        if found < 0:
            return False
        position = found + len(part)
    return True


def test_bad_input_table_rows_fail_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``reflect train`` with each row's input fails with exit 2 and the row's one-line message."""
    section = README.read_text().split("### Bad input", 1)[1].split("\n## ", 1)[0]
    rows = [(m["input"], m["message"]) for m in BAD_INPUT_ROW.finditer(section)]
    assert len(rows) >= 5, rows
    monkeypatch.chdir(tmp_path)
    for given, message in rows:
        argv = ["train", "--env", "CartPole-v1", "--total-steps", "1", "--no-progress", *shlex.split(given)]
        try:
            code = main(argv)
        except SystemExit as stop:  # a usage error
            code = stop.code
        err = capsys.readouterr().err
        assert code == 2, f"{given}: exit {code}, {err}"
        assert abridged_in(message, err) and len(err.strip().splitlines()) == 1, f"{given}: {err}"


def test_skipped_snippets_say_why() -> None:
    """Every skip names its reason; this test's output lists them (``pytest -rA``)."""
    skipped = [s for s in SNIPPETS if s.skip is not None]
    for snippet in skipped:
        assert len(snippet.skip or "") >= 8, f"line {snippet.line}: give the reason a reader would understand"
        print(f"README.md line {snippet.line} ({snippet.section}): skipped, {snippet.skip}")
    ran = [s for s in SNIPPETS if s.lang == "python" and s.skip is None]
    assert len(ran) >= len(skipped), "most Python snippets should run"


# The checks themselves catch drift (negative controls on a made-up README).

FAKE_README = '''# Title

## Section one

<!-- snippet: slow -->
<!-- snippet: setup
robot = object()
-->
```python
agent = make_agent()          # undefined name
agent.learn(50_000, log_interval=5_000)
```

<!-- snippet: skip (needs a robot) -->
```python
robot.move()
```

```bash
reflect train --env CartPole-v1 --totl-steps 5   # a misspelt option
reflect verify --neuron alif && reflect train --env CartPole-v1 --set learner.lam=0.9
```
'''


def test_the_parser_of_snippets_reads_markers_lines_and_sections() -> None:
    first, second, shell = parse_snippets(FAKE_README)
    assert (first.lang, first.line, first.section, first.slow) == ("python", 10, "Section one", True)
    assert first.setup == "robot = object()\n" and first.skip is None
    assert second.skip == "needs a robot" and not second.slow
    assert shell.lang == "bash" and shell.name == "line20-section-one"
    with pytest.raises(ValueError, match="unknown snippet marker"):
        parse_snippets("<!-- snippet: skp -->\n```python\npass\n```\n")
    with pytest.raises(ValueError, match="not directly above"):
        parse_snippets("<!-- snippet: slow -->\n\ntext\n```python\npass\n```\n")


def test_shrink_divides_only_the_step_counts() -> None:
    code = "agent.learn(50_000, log_interval=5_000)\nfor _ in range(10_000): pass\nhidden=[64, 64]\n" \
           "loop.run(duration_s=60)\nPPO(total_timesteps=3, n_steps=2048)\nlearn(100)"
    assert shrink(code, scale=1000) == (
        "agent.learn(50, log_interval=5)\nfor _ in range(10): pass\nhidden=[64, 64]\n"
        "loop.run(duration_s=1)\nPPO(total_timesteps=1, n_steps=2048)\nlearn(1)"
    )
    assert shrink(code, scale=1) == code.replace("_000", "000")


def test_an_abridged_message_matches_only_its_parts_in_order() -> None:
    assert abridged_in("did you mean 'a', ...?", "did you mean 'a', 'b'? more")
    assert not abridged_in("did you mean 'a', ...?", "did you mean 'b'?")
    assert not abridged_in("second ... first", "first then second")


def test_a_broken_snippet_fails_and_names_its_readme_line(tmp_path: Path) -> None:
    first = parse_snippets(FAKE_README)[0]
    result = run_snippet(first, tmp_path, timeout=60)
    assert result.returncode != 0
    assert "NameError: name 'make_agent' is not defined" in result.stderr
    assert f'"{README}", line 10' in result.stderr


def test_an_unknown_option_in_a_shell_block_is_reported() -> None:
    shell = parse_snippets(FAKE_README)[2]
    problems = parser_problems(shell.code)
    assert len(problems) == 1 and "--totl-steps" in problems[0], problems
    assert command_lines(shell.code)[1:] == [
        ["reflect", "verify", "--neuron", "alif"],
        ["reflect", "train", "--env", "CartPole-v1", "--set", "learner.lam=0.9"],
    ]


# Usage errors (argparse's) are one line, as the README's "Bad input" promises.


@pytest.mark.parametrize(
    ("argv", "prog", "message"),
    [
        (["train", "--envv", "CartPole-v1"], "reflect train", "unrecognized arguments: --envv"),
        (["export", "--checkpoint", "x.pt", "--format", "pdf"], "reflect export", "invalid choice: 'pdf'"),
        (["evaluate"], "reflect evaluate", "the following arguments are required: --checkpoint"),
        (["trian"], "reflect", "invalid choice: 'trian'"),
        ([], "reflect", "the following arguments are required: COMMAND"),
    ],
)
def test_a_usage_error_is_one_line_with_a_help_hint(
    argv: list[str], prog: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"{prog}: error: ") and message in err, err
    assert f"{prog} --help" in err, err


def test_help_and_version_still_work(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["train", "--help"], ["--version"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 0
        assert capsys.readouterr().out.strip()
