"""The web chat page (``GET /chat``): served without the token as a static page, and driven end
to end in headless Chromium against a real uvicorn server, the tiny bundles and an action
server: type a message, see the bot's reply, click a button, see the next reply and the error
line when the token is missing.

With ``DIALAB_SCREENSHOT=docs/chat.png`` the browser test saves the README's screenshot there.
Skipped, with the reason, where selenium, Debian's ``chromium`` / ``chromium-driver`` or a
starting browser is missing."""
from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.serving.test_serving_conversations import texts

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
TOKEN = "s3cret"


def test_the_chat_page_is_served_without_the_token(make_client):
    client = make_client(auth_token=TOKEN)
    page = client.get("/chat")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "webhooks/rest/webhook" in page.text and 'aria-live="polite"' in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "http://" not in page.text and "https://" not in page.text  # nothing external
    assert client.post("/webhooks/rest/webhook", json={"message": "hi"}).status_code == 401


@contextlib.contextmanager
def uvicorn_server(app) -> Iterator[str]:
    """``app`` served by uvicorn in a thread on a free loopback port; yields its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def browser(tmp_path, monkeypatch):
    """Headless Chromium (800x600) through Debian's chromedriver; selenium-manager stays
    offline."""
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install selenium)")
    for binary, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not binary.exists():
            pytest.skip(f"no {binary} (Debian package {package})")
    monkeypatch.setenv("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=800,600",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    except WebDriverException as err:
        pytest.skip(f"chromium did not start: {err.msg}")
    # the page's viewport, not the window (headless windows keep room for toolbars)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 800, "height": 600, "deviceScaleFactor": 1,
                            "mobile": False})
    yield driver
    driver.quit()


class ChatPage:
    """The page's parts, as a user sees them."""

    def __init__(self, driver) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver, self.by, self.wait = driver, By, WebDriverWait(driver, 30)

    def items(self, kind: str) -> list:
        return self.driver.find_elements(self.by.CSS_SELECTOR, f"#messages > li.{kind}")

    def type(self, text: str) -> None:
        from selenium.webdriver.common.keys import Keys

        self.driver.find_element(self.by.ID, "text").send_keys(text, Keys.ENTER)

    def wait_for(self, kind: str, count: int) -> list:
        """The ``kind`` items once there are at least ``count``."""
        from selenium.common.exceptions import TimeoutException

        try:
            self.wait.until(lambda _: len(self.items(kind)) >= count)
        except TimeoutException:
            shown = self.driver.find_element(self.by.ID, "messages").get_attribute("outerHTML")
            raise AssertionError(f"no {count} '{kind}' messages after 30 s; the chat shows "
                                 f"{shown}") from None
        return self.items(kind)

    def bubbles(self, kind: str) -> list[str]:
        return [item.text for item in self.items(kind)]


def test_chatting_in_a_browser(browser, make_client, action_server):
    client = make_client(action_endpoint=action_server.url, auth_token=TOKEN)
    with uvicorn_server(client.app) as url:
        browser.get(f"{url}/chat?token={TOKEN}")
        page = ChatPage(browser)

        page.type("hello")  # free text through the tiny DIET and TED: some answer comes back
        answered = page.wait_for("bot", 1)
        assert answered[0].text and not page.items("error")

        page.type("/help")  # the intent shortcut makes the answer (and its buttons) certain
        help_ = page.wait_for("bot", 2)[-1]
        assert help_.find_element(page.by.CLASS_NAME, "bubble").text in texts("utter_help")
        buttons = help_.find_elements(page.by.CSS_SELECTOR, ".choices button")
        assert [b.text for b in buttons] == ["Order a pizza", "Where is my order?", "Weather"]

        buttons[0].click()
        ask_size = page.wait_for("bot", 3)[-1]
        assert ask_size.find_element(page.by.CLASS_NAME, "bubble").text in texts("utter_ask_size")
        assert page.bubbles("user") == ["hello", "/help", "Order a pizza"]  # the title shows
        assert all(not b.is_enabled() for b in buttons)
        assert "chosen" in buttons[0].get_attribute("class")
        if os.environ.get("DIALAB_SCREENSHOT"):
            browser.save_screenshot(os.environ["DIALAB_SCREENSHOT"])

        # the button sent its payload, and the restart link "/restart", as this tab's one sender
        browser.find_element(page.by.ID, "restart").click()
        page.wait.until(lambda _: page.bubbles("note") == ["Conversation restarted."])
        shown = browser.find_elements(page.by.CSS_SELECTOR, "#messages > li")
        assert shown[0].text == "Conversation restarted." and not page.items("user")
        sender = browser.execute_script("return sessionStorage.getItem('dialab-chat-sender')")

        def events() -> list[dict]:
            return client.get(f"/conversations/{sender}/tracker",
                              params={"token": TOKEN, "include_events": "ALL"}).json()["events"]

        def user_texts() -> list[str]:
            return [e["text"] for e in events() if e["event"] == "user"]

        page.wait.until(lambda _: len(user_texts()) == 4)
        assert user_texts() == ["hello", "/help", "/order_pizza", "/restart"]
        assert events()[-1]["event"] == "restart"  # "/restart" ran action_restart

        # without the token the page still loads (the same tab keeps its sender), and the chat
        # shows the server's 401
        browser.get(f"{url}/chat")
        assert browser.execute_script("return sessionStorage.getItem('dialab-chat-sender')") \
            == sender
        page.type("hello")
        error = page.wait_for("error", 1)[0]
        assert error.text.startswith("Error 401: missing or wrong token")
        assert error.get_attribute("role") == "alert"
