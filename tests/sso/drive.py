"""Single sign-on in a real browser (Debian's Chromium, headless, Playwright) against a real
OpenID provider (oidc-provider): the e-mail-first sign-in page routes an address of the
company's domain to its provider, the provider signs the person in, and they come back signed
in, with the role their groups map to (admin, member, or no access). Screenshots go to
$SCREENSHOTS.

Environment: ISSUER (clari-mcp), IDP (the provider), SCREENSHOTS (a folder).
"""
import os

from playwright.sync_api import expect, sync_playwright

ISSUER = os.environ["ISSUER"]
IDP = os.environ["IDP"]
SHOTS = os.environ["SCREENSHOTS"]
os.makedirs(SHOTS, exist_ok=True)


def step(text):
    print(f"  - {text}", flush=True)


def sign_in(browser, login, shots=False):
    """E-mail first, then the provider's own sign-in and consent pages; returns the page."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{ISSUER}/login")
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
        page.close()

        step("finn (clari-users): a member, not an admin")
        page = sign_in(browser, "finn")
        page.wait_for_url(f"{ISSUER}/account*")
        page.goto(f"{ISSUER}/admin/members")
        expect(page.get_by_role("heading", name="Only for administrators")).to_be_visible()
        page.close()

        step("gus (sales only): the directory gives no access")
        page = sign_in(browser, "gus")
        expect(page.get_by_role("heading", name="Not assigned")).to_be_visible()
        page.screenshot(path=os.path.join(SHOTS, "23-sso-not-assigned.png"), full_page=True)
        page.close()

        browser.close()
    print("single sign-on: 3 people, 3 outcomes as their groups say")


if __name__ == "__main__":
    main()
