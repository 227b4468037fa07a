"""The docs in ``docs/`` keep up with the code (after datasette's ``tests/test_docs.py``).

* every hook in :mod:`anymal_host.hookspecs` has a ``## name(args)`` section in ``docs/plugin-hooks.md`` whose
  arguments and full ``def`` line match the hookspec;
* every name :mod:`anymal_host.modality` and :mod:`anymal_host.plugin_helpers` export, and ``TrainConfig``, has
  a ``## name`` section in ``docs/reference.md`` that lists each public field and method (methods as ``### name(args)`` headings with
  the real arguments);
* every ``TrainConfig`` field has a row naming the ``anymal train`` flag that sets it, and every flag named
  there is a real option of ``anymal train align`` / ``instruct`` that sets that field;
* every ``evaluate()`` argument and ``anymal eval`` option is in the ``evaluate`` section;
* relative links between the docs (and from README.md / CONTRIBUTING.md) point at files and headings that exist.

Headings and tables are parsed outside fenced code blocks, so a ``# comment`` in an example is not a heading.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from anymal_host import hookspecs, modality, plugin_helpers
from anymal_host.cli_training import eval_command, train_group
from anymal_host.evaluation import evaluate
from anymal_host.training import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
HOOKS_PAGE = DOCS / "plugin-hooks.md"
REFERENCE_PAGE = DOCS / "reference.md"
LINKED_PAGES = sorted(DOCS.glob("*.md")) + [ROOT / "README.md", ROOT / "CONTRIBUTING.md"]

HOOKS = {name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "anymal_spec")}
CONTRACTS = ({name: getattr(modality, name) for name in modality.__all__} | {"TrainConfig": TrainConfig}
             | {name: getattr(plugin_helpers, name) for name in plugin_helpers.__all__})
# TrainConfig fields whose CLI option has another destination name (cli_training._run_training maps them).
FLAG_DESTINATIONS = {"encoder": "encoder_options", "train_encoder": "freeze_encoder", "cache_features": "no_cache_features"}
NO_FLAG = "—"


# ----- parsing Markdown -----------------------------------------------------------------------------------


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a fenced line is replaced by an empty one)."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            out.append("")
            continue
        out.append("" if fenced else line)
    return out


def _sections(text: str, level: int) -> dict[str, str]:
    """``{heading text: section body}`` for the headings of exactly ``level`` (``##`` = 2); a section runs to
    the next heading of that level or higher. The body keeps its code blocks."""
    raw = text.splitlines()
    prose = _prose_lines(text)
    marks = []
    for i, line in enumerate(prose):
        match = re.match(r"^(#{1,6}) (.+?)\s*$", line)
        if match:
            marks.append((i, len(match.group(1)), match.group(2).replace("`", "")))
    sections: dict[str, str] = {}
    for n, (i, depth, title) in enumerate(marks):
        if depth != level:
            continue
        end = next((j for j, d, _ in marks[n + 1:] if d <= level), len(raw))
        assert title not in sections, f"heading {title!r} appears twice"
        sections[title] = "\n".join(raw[i + 1:end])
    return sections


def _table_rows(body: str) -> dict[str, list[str]]:
    """Markdown table rows by their first cell (backticks stripped), outside code blocks."""
    rows = {}
    for line in _prose_lines(body):
        if not line.startswith("|") or re.match(r"^\|[\s:|-]+\|?$", line):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        rows[cells[0].replace("`", "")] = cells
    return rows


def _call_heading(title: str) -> tuple[str, str] | None:
    """``"load(source, **options)"`` -> ``("load", "source, **options")``."""
    match = re.match(r"^([A-Za-z_]\w*)\((.*)\)$", title)
    return (match.group(1), match.group(2)) if match else None


def _arguments(fn) -> str:
    """The argument names of ``fn`` as a heading shows them: ``self`` left out, ``*`` before keyword-only ones."""
    parts, star = [], False
    for p in inspect.signature(fn).parameters.values():
        if p.name == "self":
            continue
        if p.kind is p.VAR_POSITIONAL:
            parts.append(f"*{p.name}")
            star = True
        elif p.kind is p.VAR_KEYWORD:
            parts.append(f"**{p.name}")
        else:
            if p.kind is p.KEYWORD_ONLY and not star:
                parts.append("*")
                star = True
            parts.append(p.name)
    return ", ".join(parts)


def _def_line(name: str, fn) -> str:
    """``def name(arg: Annotation) -> Return:`` as written in the source (annotations are strings here)."""
    signature = inspect.signature(fn)
    params = ", ".join(f"{p.name}: {p.annotation}" for p in signature.parameters.values())
    return f"def {name}({params}) -> {signature.return_annotation}:"


def _public_members(cls) -> tuple[list[str], dict[str, object]]:
    """(fields and attributes, methods) that ``cls`` itself declares and that do not start with ``_``."""
    if dataclasses.is_dataclass(cls):
        fields = [f.name for f in dataclasses.fields(cls)]
    else:
        fields = [n for n in vars(cls).get("__annotations__", {}) if not n.startswith("_")]
    methods = {n: v for n, v in vars(cls).items()
               if not n.startswith("_") and inspect.isfunction(v) and n not in fields}
    return fields, methods


def _click_options(*commands) -> dict[str, object]:
    """``{"--flag": click parameter}`` over the options of ``commands``."""
    return {opt: param for command in commands for param in command.params for opt in param.opts
            if opt.startswith("--")}


# ----- the hook reference ---------------------------------------------------------------------------------


def test_every_hook_is_in_the_hook_reference():
    documented = {_call_heading(t)[0] for t in _sections(HOOKS_PAGE.read_text(), 2) if _call_heading(t)}
    assert set(HOOKS) <= documented, f"add a '## name(args)' section to {HOOKS_PAGE.name} for {sorted(set(HOOKS) - documented)}"
    assert documented <= set(HOOKS), f"{HOOKS_PAGE.name} documents hooks that do not exist: {sorted(documented - set(HOOKS))}"


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_hook_section_matches_its_signature(hook):
    sections = {_call_heading(t)[0]: (t, body) for t, body in _sections(HOOKS_PAGE.read_text(), 2).items()
                if _call_heading(t)}
    if hook not in sections:
        pytest.fail(f"{HOOKS_PAGE.name} has no '## {hook}(...)' section")
    title, body = sections[hook]
    assert title == f"{hook}({_arguments(HOOKS[hook])})", f"heading {title!r} differs from the hookspec's arguments"
    assert _def_line(hook, HOOKS[hook]) in body, f"the section of {hook} must quote `{_def_line(hook, HOOKS[hook])}`"
    assert "```python" in body, f"the section of {hook} needs a runnable Python example"


# ----- the contract reference -----------------------------------------------------------------------------


def test_every_contract_has_a_reference_section():
    titles = {t.split("(")[0] for t in _sections(REFERENCE_PAGE.read_text(), 2)}
    missing = sorted(set(CONTRACTS) - titles)
    assert not missing, f"add a '## name' section to {REFERENCE_PAGE.name} for {missing}"


@pytest.mark.parametrize("name", sorted(n for n, c in CONTRACTS.items() if inspect.isclass(c)))
def test_reference_lists_every_public_member(name):
    cls = CONTRACTS[name]
    body = _sections(REFERENCE_PAGE.read_text(), 2).get(name)
    if body is None:
        pytest.fail(f"{REFERENCE_PAGE.name} has no '## {name}' section")
    fields, methods = _public_members(cls)
    rows = _table_rows(body)
    missing_fields = [f for f in fields if f not in rows]
    assert not missing_fields, f"{name}: add a table row for {missing_fields}"
    headings = {_call_heading(t)[0]: t for t in _sections(body, 3) if _call_heading(t)}
    for method, fn in methods.items():
        assert method in headings, f"{name}: add a '### {method}({_arguments(fn)})' heading"
        assert headings[method] == f"{method}({_arguments(fn)})", \
            f"{name}: heading {headings[method]!r} differs from the signature {method}({_arguments(fn)})"
    stale = sorted(m for m in headings if not hasattr(cls, m))
    assert not stale, f"{name}: the reference documents {stale}, which {name} does not have"


def test_module_functions_in_the_reference_match_their_signatures():
    sections = {_call_heading(t)[0]: t for t in _sections(REFERENCE_PAGE.read_text(), 2) if _call_heading(t)}
    for name, fn in [(n, c) for n, c in CONTRACTS.items() if inspect.isfunction(c)] + [("evaluate", evaluate)]:
        assert sections.get(name) == f"{name}({_arguments(fn)})", \
            f"{REFERENCE_PAGE.name}: the heading of {name} must read '## {name}({_arguments(fn)})'"


def test_train_config_fields_name_real_flags():
    rows = _table_rows(_sections(REFERENCE_PAGE.read_text(), 2)["TrainConfig"])
    options = _click_options(train_group.commands["align"], train_group.commands["instruct"])
    by_destination = {}
    for flag, param in options.items():
        by_destination.setdefault(param.name, set()).add(flag)
    for field in dataclasses.fields(TrainConfig):
        assert field.name in rows, f"TrainConfig.{field.name} has no row in {REFERENCE_PAGE.name}"
        flags = set(re.findall(r"--[a-z][a-z0-9-]*", rows[field.name][1]))
        destination = FLAG_DESTINATIONS.get(field.name, field.name)
        for flag in flags:
            assert flag in options, f"TrainConfig.{field.name}: {flag} is not an option of anymal train align/instruct"
            assert options[flag].name == destination, f"TrainConfig.{field.name}: {flag} sets {options[flag].name!r}"
        expected = by_destination.get(destination, set())
        assert flags == expected, (f"TrainConfig.{field.name}: the flag column lists {sorted(flags) or NO_FLAG}, "
                                   f"the CLI has {sorted(expected) or NO_FLAG}")
        if not expected:
            assert NO_FLAG in rows[field.name][1], f"TrainConfig.{field.name}: write {NO_FLAG} when there is no flag"


def test_every_train_flag_is_in_the_reference():
    body = _sections(REFERENCE_PAGE.read_text(), 2)["TrainConfig"]
    named = set(re.findall(r"--[a-z][a-z0-9-]*", "\n".join(_prose_lines(body))))
    options = _click_options(train_group.commands["align"], train_group.commands["instruct"])
    assert set(options) - {"--help"} <= named, f"document {sorted(set(options) - named - {'--help'})}"


def test_evaluate_arguments_and_eval_flags_are_in_the_reference():
    section = next(body for t, body in _sections(REFERENCE_PAGE.read_text(), 2).items() if t.startswith("evaluate("))
    rows = _table_rows(section)
    missing = [p for p in inspect.signature(evaluate).parameters if p not in rows]
    assert not missing, f"evaluate(): add a row for {missing}"
    named = set(re.findall(r"--[a-z][a-z0-9-]*", "\n".join(_prose_lines(section))))
    flags = set(_click_options(eval_command)) - {"--help"}
    assert flags <= named, f"anymal eval: document {sorted(flags - named)}"


def test_train_export_is_in_the_reference():
    assert "anymal train export" in _sections(REFERENCE_PAGE.read_text(), 2)
    assert "export" in train_group.commands


# ----- links ----------------------------------------------------------------------------------------------


def _slug(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (but ``-`` and ``_``), spaces to ``-``."""
    return re.sub(r"[^\w\- ]", "", title.replace("`", "").strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for line in _prose_lines(path.read_text()):
        match = re.match(r"^#{1,6} (.+?)\s*$", line)
        if match:
            slug = _slug(match.group(1))
            anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _links(path: Path) -> list[str]:
    text = "\n".join(re.sub(r"`[^`]*`", "", line) for line in _prose_lines(path.read_text()))
    return re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", text)


def test_docs_folder_exists():
    assert {p.name for p in DOCS.glob("*.md")} >= {"index.md", "architecture.md", "plugin-tutorial.md",
                                                    "plugin-hooks.md", "reference.md"}


@pytest.mark.parametrize("page", LINKED_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    broken = []
    for target in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target} (no heading with anchor #{anchor})")
    assert not broken, f"{page.name}: broken links: {broken}"
