"""``anymal plugin new``: write a complete plugin distribution from the templates in ``template/``.

The templates are plain files named as in the plugin, plus ``.tmpl`` (so neither pytest nor setuptools takes
them for the host's own modules or tests), with ``dot-`` for a leading dot. ``{{key}}`` placeholders, in file
contents and in paths, are replaced by :func:`render`; a placeholder without a value is an error, never left
in the output.
"""

from __future__ import annotations

import json
import keyword
import re
from pathlib import Path

__all__ = ["TEMPLATE_DIR", "new_plugin", "plugin_values", "render", "check_name"]

#: The template tree; its layout is the generated plugin's layout.
TEMPLATE_DIR = Path(__file__).resolve().parent / "template"
TEMPLATE_SUFFIX = ".tmpl"
#: ``dot-gitignore.tmpl`` writes ``.gitignore``: setuptools' package-data globs skip hidden files, so no
#: template may be one.
DOTFILE_PREFIX = "dot-"
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_NAME = re.compile(r"[a-z][a-z0-9_]*")


def check_name(name: str) -> str:
    """``name`` if it can be a modality name, a Python package suffix and a file extension; else ValueError."""
    if not _NAME.fullmatch(name) or name.endswith("_") or "__" in name:
        raise ValueError(f"{name!r} is not a valid modality name: use lower-case letters, digits and single "
                         "underscores, starting with a letter (e.g. pulse, heart_rate)")
    if keyword.iskeyword(name):
        raise ValueError(f"{name!r} is a Python keyword: pick another modality name")
    if len(name) > 40:
        raise ValueError(f"{name!r} is {len(name)} characters long: keep a modality name to 40")
    return name


def plugin_values(name: str, description: str | None = None) -> dict[str, str]:
    """The placeholder values for the plugin of modality ``name``, each escaped for where it goes."""
    check_name(name)
    description = description if description is not None else f"{name} recordings as a sense for anymal"
    if not description.strip() or not description.isprintable():
        raise ValueError("the description must be one line of printable text")
    return {
        "name": name,
        "package": f"anymal_plugin_{name}",
        "dist": f"anymal-plugin-{name}",
        "Class": "".join(part.capitalize() for part in name.split("_")),
        "description": description,
        "description_doc": description.replace("\\", "\\\\").replace('"""', '\\"\\"\\"'),  # inside a docstring
        "description_py": repr(description),
        "description_toml": json.dumps(description, ensure_ascii=False),  # a JSON string is a TOML basic string
    }


def render(text: str, values: dict[str, str], *, where: str = "template") -> str:
    """Replace every ``{{key}}`` in ``text`` with ``values[key]``; an unknown key raises KeyError naming it."""
    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"{where}: no value for placeholder {{{{{key}}}}} (known: {', '.join(sorted(values))})")
        return values[key]

    return _PLACEHOLDER.sub(value, text)


def new_plugin(name: str, parent: str | Path = ".", *, description: str | None = None,
               force: bool = False) -> tuple[Path, list[Path]]:
    """Write ``parent/anymal-plugin-<name>/`` from the templates; return the folder and the files written.

    An existing folder is refused (FileExistsError) unless ``force``, which writes the scaffold's files over
    their namesakes and leaves every other file (a ``.git``, training runs, your own modules) where it is.
    """
    values = plugin_values(name, description)
    root = Path(parent) / values["dist"]
    if root.exists() or root.is_symlink():
        if not force:
            raise FileExistsError(f"{root} already exists: pick another --dir, remove it, or pass --force to write "
                                  "the scaffold's files over the ones of the same name in it")
        if root.is_symlink() or not root.is_dir():
            raise FileExistsError(f"{root} exists and is not a folder: remove it yourself")
    written = []
    for template in sorted(TEMPLATE_DIR.rglob(f"*{TEMPLATE_SUFFIX}")):
        relative = template.relative_to(TEMPLATE_DIR).as_posix()[: -len(TEMPLATE_SUFFIX)]
        target = root / render(relative, values, where=relative)
        if target.name.startswith(DOTFILE_PREFIX):
            target = target.with_name("." + target.name[len(DOTFILE_PREFIX):])
        target.parent.mkdir(parents=True, exist_ok=True)
        if any(part.is_symlink() for part in (target, *target.parents) if root in (part, *part.parents)):
            # --force writes over files of the same name, never through a link to somewhere else
            raise FileExistsError(f"{target} is (or lies under) a link: remove the link, or generate into a new "
                                  "folder")
        target.write_text(render(template.read_text(encoding="utf-8"), values, where=relative), encoding="utf-8")
        written.append(target)
    return root, sorted(written)
