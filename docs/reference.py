"""The HTTP endpoints page, generated from openapi.yaml.

`python3 docs/reference.py` prints the generated part; `--check` fails when the page differs,
`--write` rewrites it (docs/build.sh runs --check, so the page cannot drift from the spec).
"""

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "src" / "reference" / "http.md"
BEGIN = "<!-- generated from the code: do not edit by hand -->"
END = "<!-- end of generated part -->"
METHODS = ["get", "post", "put", "patch", "delete"]


def generated() -> str:
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    by_tag: dict[str, list[str]] = {}
    for path, item in spec["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if not op:
                continue
            tag = (op.get("tags") or ["Other"])[0]
            summary = (op.get("summary") or op.get("operationId") or "").replace("|", "\\|")
            auth = "none" if op.get("security") == [] else ", ".join(
                sorted({k for s in op.get("security", spec.get("security", [])) for k in s})
            ) or "none"
            by_tag.setdefault(tag, []).append(f"| `{method.upper()} {path}` | {summary} | {auth} |")
    tags = {t["name"]: t.get("description", "") for t in spec.get("tags", [])}
    out = []
    for tag in sorted(by_tag, key=lambda t: list(tags).index(t) if t in tags else len(tags)):
        out.append(f"## {tag}\n")
        if tags.get(tag):
            out.append(tags[tag].strip() + "\n")
        out.append("| endpoint | what it does | authentication |\n|---|---|---|")
        out.extend(by_tag[tag])
        out.append("")
    return "\n".join(out) + "\n"


def main() -> int:
    text = PAGE.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    fresh = f"{head}{BEGIN}\n{generated()}{END}{tail}"
    if "--write" in sys.argv:
        PAGE.write_text(fresh)
        return 0
    if "--check" in sys.argv:
        if fresh != text:
            print("docs/src/reference/http.md is out of date with openapi.yaml: run python3 docs/reference.py --write")
            return 1
        print("  ok   docs/src/reference/http.md matches openapi.yaml")
        return 0
    print(generated())
    return 0


if __name__ == "__main__":
    sys.exit(main())
