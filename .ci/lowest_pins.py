"""Print pip requirements that pin every dependency of the given pyproject files to its declared floor
(``name>=X`` -> ``name==X``), for the CI step that installs the lowest versions anymal claims to support.

    python .ci/lowest_pins.py pyproject.toml plugins/anymal-plugin-imu/pyproject.toml [--extra NAME ...]

Only ``>=`` floors are pinned; requirements on anymal itself (a plugin's host range) are left out, since the
host is installed from the checkout. torch is left out: its floor is the CPU wheel this CI installs first.
"""

from __future__ import annotations

import argparse
import re
import tomllib

SKIP = {"anymal", "torch"}


def floors(path: str, extras: list[str]) -> list[str]:
    with open(path, "rb") as handle:
        project = tomllib.load(handle)["project"]
    requirements = list(project.get("dependencies", []))
    for extra in extras:
        requirements += project.get("optional-dependencies", {}).get(extra, [])
    pins = []
    for requirement in requirements:
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*>=\s*([^,;\s]+)", requirement)
        if match and match.group(1).lower().replace("_", "-") not in SKIP:
            pins.append(f"{match.group(1)}{match.group(2) or ''}=={match.group(3)}")
    return pins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pyprojects", nargs="+")
    parser.add_argument("--extra", action="append", default=[], help="also pin this extra's floors")
    args = parser.parse_args()
    seen: dict[str, str] = {}
    for path in args.pyprojects:
        for pin in floors(path, args.extra):
            name = pin.split("==")[0].split("[")[0].lower().replace("_", "-")
            seen.setdefault(name, pin)  # the first file's floor wins (the host's)
    print("\n".join(seen.values()))


if __name__ == "__main__":
    main()
