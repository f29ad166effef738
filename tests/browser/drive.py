"""A real browser (Debian's Chromium, headless, driven by Playwright) through the paths a person
takes: an MCP client's authorization URL, sign-in, consent with one scope unticked, the code at
a local callback; the account page revokes the application and its token stops working; the
admin pages test the Clari connection, create an API key that works on /mcp and a machine client
whose client-credentials token works until it is revoked there. A screenshot of
every page goes to $SCREENSHOTS.

Environment: ISSUER, MCP_URL, EMAIL, PASSWORD (the demo's), SCREENSHOTS (a folder).
"""
import base64
import hashlib
import http.server
import json
import os
import secrets
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request

from playwright.sync_api import expect, sync_playwright

ISSUER = os.environ["ISSUER"]
MCP_URL = os.environ["MCP_URL"]
EMAIL = os.environ["EMAIL"]
PASSWORD = os.environ["PASSWORD"]
SHOTS = os.environ["SCREENSHOTS"]
os.makedirs(SHOTS, exist_ok=True)


def step(text):
    print(f"  - {text}", flush=True)


def post(url, data=None, body=None, headers=None):
    headers = dict(headers or {})
    if body is not None:
        raw = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    else:
        raw = urllib.parse.urlencode(data or {}).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    req = urllib.request.Request(url, data=raw, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, text.decode(errors="replace")


def mcp(token, method, params=None):
    return post(
        MCP_URL,
        body={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}},
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-11-25",
        },
    )


# --- the MCP client's side: a loopback callback, DCR, PKCE ------------------------------------

received = {}


class Callback(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        received.update({k: v[0] for k, v in q.items()})
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(b"<!doctype html><title>Connected</title><h1>You can close this window.</h1>")

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Callback)
threading.Thread(target=server.serve_forever, daemon=True).start()
redirect_uri = f"http://127.0.0.1:{server.server_port}/callback"

status, client = post(
    f"{ISSUER}/register",
    body={
        "client_name": "Browser Test Agent",
        "redirect_uris": [redirect_uri],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "application_type": "native",
    },
)
assert status == 201, client
client_id = client["client_id"]
verifier = secrets.token_urlsafe(48)
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
state = secrets.token_urlsafe(12)
authorize = f"{ISSUER}/authorize?" + urllib.parse.urlencode(
    {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "scope": "clari:read",
        "resource": MCP_URL,
        "state": state,
    }
)

with sync_playwright() as p:
    browser = p.chromium.launch(
        executable_path="/usr/bin/chromium",
        headless=True,
        args=["--no-sandbox", "--disable-dev-shm-usage"],
    )
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    shot = lambda name: page.screenshot(path=os.path.join(SHOTS, name), full_page=True)

    step("authorization URL → sign-in page")
    page.goto(authorize)
    expect(page.get_by_label("E-mail")).to_be_visible()
    shot("01-sign-in.png")
    page.get_by_label("E-mail").fill(EMAIL)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_label("Password")).to_be_visible()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    step("consent: untick audit:read, allow")
    expect(page.get_by_role("heading", name="Browser Test Agent")).to_be_visible()
    shot("02-consent.png")
    page.get_by_label("Read Clari audit events").uncheck()
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(f"{redirect_uri}*")
    assert received.get("state") == state, received
    assert received.get("iss") == ISSUER, received
    status, tokens = post(
        f"{ISSUER}/token",
        data={
            "grant_type": "authorization_code",
            "code": received["code"],
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "client_id": client_id,
        },
    )
    assert status == 200, tokens
    granted = tokens["scope"].split()
    assert "audit:read" not in granted and "clari:read" not in granted, granted
    assert "forecasts:read" in granted, granted
    access = tokens["access_token"]
    status, listed = mcp(access, "tools/list")
    assert status == 200, listed
    step(f"code at the callback, token scope: {tokens['scope']}")

    step("account page: revoke the application")
    page.goto(f"{ISSUER}/account")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    shot("03-account.png")
    page.get_by_role("button", name="Revoke Browser Test Agent").click()
    expect(page.get_by_role("status")).to_contain_text("can no longer read")
    status, body = mcp(access, "tools/list")
    assert status == 401, (status, body)
    step("the revoked token gets 401 on the next MCP call")

    step("admin: Clari connection, test it")
    page.goto(f"{ISSUER}/admin")
    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_role("status")).to_contain_text("Clari answered")
    shot("04-admin-clari.png")

    step("admin: create an API key, use it on /mcp")
    page.goto(f"{ISSUER}/admin/access")
    form = page.locator("form[action='/admin/api-keys']")
    form.get_by_label("Name").fill("browser test key")
    form.get_by_label("Read all of your organisation").check()
    form.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", name="browser test key")).to_be_visible()
    shot("05-key-created.png")
    key = page.locator("#new-key").input_value()
    assert key.startswith("cmk_"), key
    status, listed = mcp(key, "tools/list")
    assert status == 200, listed
    status, called = mcp(key, "tools/call", {"name": "list_time_periods", "arguments": {}})
    assert status == 200 and not called["result"].get("isError"), called

    step("admin: register a machine client with a secret; it gets a token and calls a tool; revoke it")
    page.goto(f"{ISSUER}/admin/machines")
    expect(page.get_by_role("heading", name="Machine clients")).to_be_visible()
    form = page.locator("form[action='/admin/machines']")
    form.get_by_label("Name").fill("browser test report")
    form.get_by_label("Read the forecast hierarchy").check()
    form.get_by_label("A secret made here and shown once").check()
    form.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", name="browser test report")).to_be_visible()
    shot("05b-machine-created.png")
    client_id = page.locator("#machine-id").input_value()
    secret = page.locator("#machine-secret").input_value()
    assert client_id.startswith("svc_") and secret.startswith("cms_"), (client_id, secret)
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    status, machine = post(
        f"{ISSUER}/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert status == 200 and machine["scope"] == "users:read", (status, machine)
    status, called = mcp(machine["access_token"], "tools/call", {"name": "list_users", "arguments": {}})
    assert status == 200 and not called["result"].get("isError"), called
    page.goto(f"{ISSUER}/admin/machines")
    expect(page.get_by_role("cell", name=client_id)).to_be_visible()
    shot("05c-machines.png")
    page.get_by_role("button", name="Revoke machine client browser test report").click()
    expect(page.get_by_role("status")).to_contain_text("Machine client revoked")
    status, _ = mcp(machine["access_token"], "tools/list")
    assert status == 401, status

    step("admin: invite a person; they accept in their own browser with their own password")
    page.goto(f"{ISSUER}/admin/members")
    expect(page.get_by_role("heading", name="Members")).to_be_visible()
    page.get_by_label("E-mail").fill("newcomer@example.com")
    page.get_by_role("button", name="Invite").click()
    expect(page.get_by_role("heading", name="newcomer@example.com is invited")).to_be_visible()
    shot("06a-invitation-created.png")
    link = page.locator("#invite-link").input_value()
    assert link.startswith(f"{ISSUER}/invitations/"), link
    invitee = browser.new_page(viewport={"width": 1280, "height": 900})
    invitee.goto(link)
    expect(invitee.get_by_role("heading", name="You are new to clari-mcp")).to_be_visible()
    invitee.screenshot(path=os.path.join(SHOTS, "06b-invitation.png"), full_page=True)
    invitee.locator("#new").fill("the newcomer's own passphrase")
    invitee.locator("#confirm").fill("the newcomer's own passphrase")
    invitee.get_by_role("button", name="Create my account and join").click()
    invitee.wait_for_url(f"{ISSUER}/account*")
    expect(invitee.get_by_text("newcomer@example.com").first).to_be_visible()
    invitee.close()
    page.goto(f"{ISSUER}/admin/members")
    expect(page.get_by_role("cell", name="newcomer@example.com", exact=True)).to_be_visible()
    shot("06-members.png")
    page.goto(f"{ISSUER}/admin/audit")
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    shot("07-audit.png")
    page.goto(f"{ISSUER}/admin/activity")
    expect(page.locator("svg").first).to_be_visible()
    shot("08-activity.png")

    step("the account page on a phone")
    phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone.context.add_cookies(page.context.cookies())
    phone.goto(f"{ISSUER}/account")
    expect(phone.get_by_role("heading", name="Your account")).to_be_visible()
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width} px)"
    phone.screenshot(path=os.path.join(SHOTS, "09-account-phone.png"), full_page=True)
    browser.close()

server.shutdown()
print(f"browser test: passed (screenshots in {SHOTS})")
sys.exit(0)
