"""Single sign-on in a real browser (Debian's Chromium, headless, Playwright) against a real
OpenID provider (oidc-provider): the e-mail-first sign-in page routes an address of the
company's domain to its provider, the provider signs the person in, and they come back signed
in, with the role their groups map to (admin, member, or no access). The admin then runs the
organisation's sign-in page (SCIM token, single sign-on required), an MCP client's
authorization goes through the company login and ends in a token that works on /mcp, and the
password form is refused to the company's people. Screenshots go to $SCREENSHOTS.

Environment: ISSUER (clari-mcp), IDP (the provider), SCREENSHOTS (a folder).
"""
import base64
import hashlib
import http.server
import json
import os
import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request

from playwright.sync_api import expect, sync_playwright

ISSUER = os.environ["ISSUER"]
IDP = os.environ["IDP"]
SHOTS = os.environ["SCREENSHOTS"]
os.makedirs(SHOTS, exist_ok=True)


def step(text):
    print(f"  - {text}", flush=True)


def call(url, data=None, body=None, headers=None, method=None):
    """One HTTP call outside the browser: (status, JSON or text)."""
    headers = dict(headers or {})
    raw = None
    if body is not None:
        raw = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    elif data is not None:
        raw = urllib.parse.urlencode(data).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    req = urllib.request.Request(url, data=raw, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req) as r:
            text = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        text, status = e.read(), e.code
    try:
        return status, json.loads(text or b"null")
    except ValueError:
        return status, text.decode(errors="replace")


received = {}


class Callback(http.server.BaseHTTPRequestHandler):
    """The MCP client's loopback redirect URI."""

    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        received.update({k: v[0] for k, v in q.items()})
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(b"<!doctype html><title>Connected</title><h1>Connected.</h1>")

    def log_message(self, *args):
        pass


def sign_in(browser, login, shots=False, start=None):
    """E-mail first, then the provider's own sign-in and consent pages; returns the page."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(start or f"{ISSUER}/login")
    expect(page.get_by_role("button", name="Continue")).to_be_visible()
    if shots:
        page.screenshot(path=os.path.join(SHOTS, "20-sign-in-email-first.png"), full_page=True)
    page.get_by_label("E-mail").fill(f"{login}@sso-example.test")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{IDP}/**")
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any password: the provider's test pages take any")
    if shots:
        page.screenshot(path=os.path.join(SHOTS, "21-company-idp.png"), full_page=True)
    page.locator("button[type=submit]").first.click()
    # The provider asks once to share the claims with clari-mcp.
    page.wait_for_load_state()
    if page.url.startswith(IDP):
        page.locator("button[type=submit]").first.click()
    page.wait_for_url(f"{ISSUER}/**")
    return page


def main():
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )

        step("eve (clari-admins): e-mail first → company sign-in → back signed in as an admin")
        page = sign_in(browser, "eve", shots=True)
        page.wait_for_url(f"{ISSUER}/account*")
        expect(page.get_by_text("eve@sso-example.test").first).to_be_visible()
        page.goto(f"{ISSUER}/admin/members")
        expect(page.get_by_role("heading", name="Members")).to_be_visible()
        expect(page.get_by_role("cell", name="eve@sso-example.test (you)")).to_be_visible()
        page.screenshot(path=os.path.join(SHOTS, "22-sso-admin.png"), full_page=True)

        step("eve runs the organisation's sign-in page: the connection, a SCIM token that works")
        page.goto(f"{ISSUER}/admin/sign-in")
        expect(page.get_by_role("heading", name="How people sign in")).to_be_visible()
        expect(page.get_by_label("Issuer URL")).to_have_value(IDP)
        expect(page.get_by_label("Client secret", exact=False)).to_have_value("")
        page.get_by_label("New SCIM token", exact=False).fill("company directory")
        page.get_by_role("button", name="Create SCIM token").click()
        expect(page.get_by_role("heading", name="company directory")).to_be_visible()
        page.screenshot(path=os.path.join(SHOTS, "24-scim-token.png"), full_page=True)
        token = page.locator("#scim-token").input_value()
        base = page.locator("#scim-base").input_value()
        status, made = call(
            f"{base}/Users",
            body={
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "hana@sso-example.test",
                "active": True,
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        assert status == 201 and made["userName"] == "hana@sso-example.test", (status, made)

        step("eve requires single sign-on (the stored client secret is kept)")
        page.goto(f"{ISSUER}/admin/sign-in")
        page.get_by_label("Require single sign-on", exact=False).check()
        page.get_by_role("button", name="Save single sign-on").click()
        expect(page.get_by_role("status")).to_contain_text("and only that way")
        page.screenshot(path=os.path.join(SHOTS, "25-sso-required.png"), full_page=True)
        page.close()

        step("finn (clari-users): a member, not an admin")
        page = sign_in(browser, "finn")
        page.wait_for_url(f"{ISSUER}/account*")
        page.goto(f"{ISSUER}/admin/members")
        expect(page.get_by_role("heading", name="Only for administrators")).to_be_visible()
        page.close()

        step("an MCP client's authorization through the company login ends in a token")
        server = http.server.HTTPServer(("127.0.0.1", 0), Callback)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        redirect_uri = f"http://127.0.0.1:{server.server_port}/callback"
        status, client = call(
            f"{ISSUER}/register",
            body={
                "client_name": "SSO Test Agent",
                "redirect_uris": [redirect_uri],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "application_type": "native",
            },
        )
        assert status == 201, client
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        )
        state = secrets.token_urlsafe(12)
        mcp_url = f"{ISSUER}/mcp"
        authorize = f"{ISSUER}/authorize?" + urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": client["client_id"],
                "redirect_uri": redirect_uri,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "scope": "forecasts:read",
                "resource": mcp_url,
                "state": state,
            }
        )
        page = sign_in(browser, "finn", start=authorize)
        expect(page.get_by_role("heading", name="SSO Test Agent")).to_be_visible()
        page.screenshot(path=os.path.join(SHOTS, "26-sso-consent.png"), full_page=True)
        page.get_by_role("button", name="Allow").click()
        page.wait_for_url(f"{redirect_uri}*")
        assert received.get("state") == state and received.get("iss") == ISSUER, received
        status, tokens = call(
            f"{ISSUER}/token",
            data={
                "grant_type": "authorization_code",
                "code": received["code"],
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
                "client_id": client["client_id"],
            },
        )
        assert status == 200 and tokens["scope"] == "forecasts:read", tokens
        status, listed = call(
            mcp_url,
            body={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
            headers={
                "Authorization": f"Bearer {tokens['access_token']}",
                "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": "2025-11-25",
            },
        )
        assert status == 200 and listed["result"]["tools"], (status, listed)
        page.close()
        server.shutdown()

        step("single sign-on required: the password form is refused to the company's people")
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{ISSUER}/login")
        csrf = page.locator("input[name=csrf]").first.input_value()
        refused = page.request.post(
            f"{ISSUER}/login",
            form={"csrf": csrf, "email": "finn@sso-example.test", "password": "a guessed password"},
            max_redirects=0,
        )
        assert refused.status == 403, refused.status
        assert "requires its own sign-in" in refused.text(), refused.text()
        page.close()

        step("gus (sales only): the directory gives no access")
        page = sign_in(browser, "gus")
        expect(page.get_by_role("heading", name="Not assigned")).to_be_visible()
        page.screenshot(path=os.path.join(SHOTS, "23-sso-not-assigned.png"), full_page=True)
        page.close()

        browser.close()
    print(
        "single sign-on: 3 people, 3 outcomes as their groups say; SCIM token and SSO-required "
        "from the admin page; an MCP client's token through the company login"
    )


if __name__ == "__main__":
    main()
