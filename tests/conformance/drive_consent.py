#!/usr/bin/env python3
"""Plays the person at the browser for a clari-mcp authorization URL: signs in, approves every
scope on the consent page, and follows the final redirect to the client's callback.

    drive_consent.py AUTHORIZATION_URL EMAIL PASSWORD
"""
import html
import http.cookiejar
import re
import sys
import urllib.parse
import urllib.request


def field(page: str, name: str):
    m = re.search(r'name="%s" value="([^"]*)"' % re.escape(name), page)
    return html.unescape(m.group(1)) if m else None


def main() -> int:
    url, email, password = sys.argv[1:4]
    parts = urllib.parse.urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}"
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    page = opener.open(url, timeout=30).read().decode()
    if 'action="/login"' in page:
        form = {"csrf": field(page, "csrf"), "email": email, "password": password}
        if field(page, "rid"):
            form["rid"] = field(page, "rid")
        page = opener.open(base + "/login", urllib.parse.urlencode(form).encode(), timeout=30).read().decode()
    if 'action="/authorize/consent"' not in page:
        print("no consent page reached:\n" + page[:2000], file=sys.stderr)
        return 1
    form = {"csrf": field(page, "csrf"), "rid": field(page, "rid"), "org": field(page, "org"), "decision": "approve"}
    for scope in re.findall(r'name="(scope_[^"]+)"', page):
        form[scope] = "on"
    final = opener.open(base + "/authorize/consent", urllib.parse.urlencode(form).encode(), timeout=30)
    print("redirected to", urllib.parse.urlsplit(final.geturl())._replace(query="…").geturl())
    return 0


if __name__ == "__main__":
    sys.exit(main())
