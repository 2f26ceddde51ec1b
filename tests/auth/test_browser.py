"""Signing in with Chromium: first-run setup through the logged link, MFA enrolment, sign-out, a viewer's view."""

from __future__ import annotations

import time

import httpx
import pyotp
import pytest

from tests.auth.support import PASSWORD, create_user
from tests.support.processes import Server, start_server
from tests.ui.conftest import browser, new_page, save_screenshot  # noqa: F401 - browser is a fixture

SETUP_PASSWORD = "first-admin-passphrase-1"


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("first-run")
    server = start_server(base / "data", base / "server.log", bootstrap=False)
    yield server
    server.proc.stop()


@pytest.fixture(scope="module")
def users_web(tmp_path_factory):
    base = tmp_path_factory.mktemp("web-users")
    server = start_server(base / "data", base / "server.log")
    create_user(server, "viewer-web", "viewer")
    create_user(server, "mfa-web", "editor")
    yield server
    server.proc.stop()


def setup_link(server: Server) -> str:
    record = server.proc.wait_for_log("first start: open the setup link to create the admin account")
    return record["url"]


def fill_sign_in(page, username: str, password: str) -> None:
    page.wait_for_selector("[data-testid=login-form]")
    page.fill("[data-testid=login-form] input[name=username]", username)
    page.fill("[data-testid=login-form] input[name=password]", password)
    page.click("[data-testid=login-form] button[type=submit]")


def test_first_run_setup_through_logged_link(browser, fresh_server: Server):  # noqa: F811
    link = setup_link(fresh_server)
    before = httpx.get(f"{fresh_server.url}/api/v1/endpoints", timeout=10)
    context, page, watch = new_page(browser)
    try:
        page.goto(link)
        page.wait_for_selector("[data-testid=setup-form]")
        page.fill("[data-testid=setup-form] input[name=username]", "root-admin")
        page.fill("[data-testid=setup-form] input[name=password]", SETUP_PASSWORD)
        page.fill("[data-testid=setup-form] input[name=repeat]", SETUP_PASSWORD)
        page.click("[data-testid=setup-form] button[type=submit]")
        page.wait_for_selector("[data-testid=signed-in-user]")
        user = page.get_by_test_id("signed-in-user").inner_text()
        path = page.evaluate("() => location.pathname")
        save_screenshot(page, "auth-after-setup")
    finally:
        context.close()
    reused = httpx.post(f"{fresh_server.url}/api/v1/auth/setup", timeout=10, json={
        "token": link.split("token=", 1)[1], "username": "second", "password": "another-passphrase-2"})
    after = httpx.get(f"{fresh_server.url}/api/v1/endpoints", timeout=10)

    assert before.status_code == 401
    assert before.json()["error"]["code"] == "setup_required"
    assert "setup link" in before.json()["error"]["message"]
    assert link.startswith(f"{fresh_server.url}/setup?token=")
    assert user == "root-admin"
    assert path == "/"
    assert reused.status_code == 409, "the setup link works once"
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "unauthenticated"
    watch.assert_clean()


def test_login_with_mfa_enrolment_then_code(browser, users_web: Server):  # noqa: F811
    with users_web.client() as admin:
        required = admin.put("/api/v1/security/settings", json={"require_mfa": True})
    context, page, watch = new_page(browser)
    try:
        page.goto(f"{users_web.url}/endpoints")
        fill_sign_in(page, "mfa-web", PASSWORD)
        page.wait_for_selector("[data-testid=mfa-secret]")
        assert page.locator("img.qr").get_attribute("src").startswith("data:image/svg+xml;base64,")
        seed = page.get_by_test_id("mfa-secret").inner_text()
        totp = pyotp.TOTP(seed)
        step = totp.timecode(int(time.time()))
        page.fill("[data-testid=mfa-enrollment] input[name=code]", totp.generate_otp(step))
        page.click("[data-testid=mfa-enrollment] button[type=submit]")
        page.wait_for_selector("[data-testid=recovery-codes]")
        codes = page.locator("[data-testid=recovery-code]").all_inner_texts()
        save_screenshot(page, "auth-recovery-codes")
        page.click("[data-testid=recovery-codes] button")
        page.wait_for_selector("[data-testid=signed-in-user]")
        first_user = page.get_by_test_id("signed-in-user").inner_text()
        landed = page.evaluate("() => location.pathname")

        page.click("[data-testid=sign-out]")
        fill_sign_in(page, "mfa-web", PASSWORD)
        page.wait_for_selector("[data-testid=mfa-form]")
        page.fill("[data-testid=mfa-form] input[name=code]", totp.generate_otp(step + 1))
        page.click("[data-testid=mfa-form] button[type=submit]")
        page.wait_for_selector("[data-testid=signed-in-user]")
        second_user = page.get_by_test_id("signed-in-user").inner_text()
    finally:
        context.close()
        with users_web.client() as admin:
            admin.put("/api/v1/security/settings", json={"require_mfa": False})

    assert required.status_code == 200, required.text
    assert len(codes) == 10
    assert first_user == "mfa-web"
    assert landed == "/endpoints", "signing in returns to the page that was asked for"
    assert second_user == "mfa-web"
    watch.assert_clean()


def test_logout_ends_the_session(browser, users_web: Server):  # noqa: F811
    context, page, watch = new_page(browser, server=users_web, username="viewer-web", password=PASSWORD)
    try:
        page.goto(f"{users_web.url}/")
        page.wait_for_selector("[data-testid=signed-in-user]")
        page.click("[data-testid=sign-out]")
        page.wait_for_selector("[data-testid=login-form]")
        me = page.evaluate("async () => (await fetch('/api/v1/auth/me')).status")
        page.goto(f"{users_web.url}/endpoints")
        page.wait_for_selector("[data-testid=login-form]")
        url = page.url
    finally:
        context.close()

    assert me == 401
    assert url.endswith("/login?next=%2Fendpoints")


def test_viewer_sees_no_edit_controls(browser, users_web: Server):  # noqa: F811
    context, page, watch = new_page(browser, server=users_web, username="viewer-web", password=PASSWORD)
    try:
        page.goto(f"{users_web.url}/")
        page.wait_for_selector("[data-testid=signed-in-user]")
        nav = page.locator("nav[aria-label=Main] a").all_inner_texts()
        page.goto(f"{users_web.url}/settings")
        page.wait_for_selector("text=Your role has no settings to manage.")
        settings_forms = page.locator("form").count()
        page.goto(f"{users_web.url}/account")
        page.wait_for_selector("[data-testid=account-role]")
        role = page.get_by_test_id("account-role").inner_text()
        admin_controls = page.locator("[data-testid=new-user-form], [data-testid=users-table], "
                                      "[data-testid=require-mfa]").count()
        save_screenshot(page, "auth-viewer-account")
    finally:
        context.close()

    assert nav == ["Overview", "Endpoints", "Explore"], "no Settings link for a viewer"
    assert settings_forms == 0
    assert role == "viewer"
    assert admin_controls == 0
    watch.assert_clean()


def test_admin_sees_settings(browser, users_web: Server):  # noqa: F811
    context, page, watch = new_page(browser, server=users_web)
    try:
        page.goto(f"{users_web.url}/settings/users")
        page.wait_for_selector("[data-testid=users-table] tr[data-username=viewer-web]")
        page.get_by_role("link", name="Security events").click()
        page.wait_for_selector("[data-testid=events-table] tr[data-type=login_succeeded]")
        url = page.url
        save_screenshot(page, "auth-security-events")
    finally:
        context.close()

    assert url.endswith("/settings/events")
    watch.assert_clean()
