"""Checks every link of the built book: each relative link names a page that exists, and each
#fragment an element id on that page. Links out of the book (http, https, mailto) are listed,
not fetched: the machines CI runs on reach no outside host.
"""

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if a.get("name") and tag == "a":
            self.ids.add(a["name"])
        for key in ("href", "src"):
            if a.get(key):
                self.links.append(a[key])


def main(root: Path) -> int:
    pages = {}
    for f in root.rglob("*.html"):
        p = Page()
        p.feed(f.read_text(encoding="utf-8"))
        pages[f.resolve()] = p
    assert pages, f"no pages under {root}"
    broken, outside, checked = [], set(), 0
    for f, p in pages.items():
        if f.name in ("print.html", "404.html", "toc.html"):
            continue
        for link in p.links:
            parts = urlsplit(link)
            if parts.scheme in ("http", "https", "mailto"):
                outside.add(link)
                continue
            if parts.scheme or link.startswith("javascript:"):
                continue
            target = (f.parent / unquote(parts.path)).resolve() if parts.path else f
            checked += 1
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{f.relative_to(root.resolve())}: {link} (no such file)")
                continue
            if parts.fragment and target in pages and parts.fragment not in pages[target].ids:
                broken.append(f"{f.relative_to(root.resolve())}: {link} (no #{parts.fragment} there)")
    for b in broken:
        print("FAIL", b)
    print(f"book: {len(pages)} pages, {checked} internal links checked, {len(broken)} broken; "
          f"{len(outside)} links out of the book not fetched")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
