"""The leak console in a real browser: headless Chromium (Debian's
chromium, driven by chromedriver through python3-selenium) logs in, sees a
leak that a test client just published appear in the live feed and the
per-category chart, opens the client's page and disconnects the client.
Screenshots go to MOAT_SCREENSHOT_DIR.  The leaked value appears neither in
the page nor in any API response the page received.  Waits are bounded;
nothing is timed."""
import json
import os
import re
import subprocess
import threading
import time
import unittest
import urllib.request

import paho.mqtt.client as mqtt
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from moat_harness import Broker, password_file_text
from test_metrics import get, http_port

TIMEOUT = 20.0
ADMIN_PW = "Adm1n-console-pass"
CAM_PW = "C4m-console-pass"
SECRET = "erin.secret@example.org"
SHOTS = os.environ.get("MOAT_SCREENSHOT_DIR", "/tmp/moat-console-shots")


def browser():
    o = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu",
              "--disable-dev-shm-usage", "--no-first-run",
              "--window-size=1400,1000", "--proxy-server=http://0.0.0.0:9",
              "--proxy-bypass-list=127.0.0.1"):
        o.add_argument(a)
    o.binary_location = "/usr/bin/chromium"
    o.set_capability("goog:loggingPrefs", {"performance": "ALL",
                                           "browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"),
                            options=o)


class ConsoleTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        files = {
            "passwd": password_file_text({"admin": ADMIN_PW,
                                          "cam": CAM_PW}),
            "acl": "user admin\ntopic read $SYS/#\ntopic readwrite #\n"
                   "user cam\ntopic readwrite cams/#\n",
        }
        cls.broker = Broker("password_file @DIR@/passwd\nacl_file @DIR@/acl\n"
                            "listener 0 127.0.0.1\nprotocol http\n",
                            files=files).start()
        cls.http = http_port(cls.broker)
        cls.base = "http://127.0.0.1:%d" % cls.http
        os.makedirs(SHOTS, exist_ok=True)
        cls.driver = browser()
        cls.driver.set_page_load_timeout(TIMEOUT)

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()
        rc = cls.broker.stop()
        cls.broker.dir.cleanup()
        assert rc == 0

    def shot(self, name):
        self.driver.save_screenshot(os.path.join(SHOTS, name + ".png"))

    def wait(self, pred, what):
        try:
            return WebDriverWait(self.driver, TIMEOUT, 0.2).until(
                lambda d: pred(d))
        except WebDriverException:
            self.shot("failed-" + re.sub(r"\W", "_", what))
            raise AssertionError("timed out waiting for " + what)

    def api_bodies(self):
        """Bodies of every /api/v1/ response the page received."""
        out = []
        for entry in self.driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg["method"] != "Network.responseReceived":
                continue
            if "/api/v1/" not in msg["params"]["response"]["url"]:
                continue
            try:
                body = self.driver.execute_cdp_cmd(
                    "Network.getResponseBody",
                    {"requestId": msg["params"]["requestId"]})
                out.append(body["body"])
            except WebDriverException:
                pass  # evicted from the browser's buffer
        return out

    def test_static_files_and_csp(self):
        status, headers, body = get(self.http, "/console/")
        self.assertEqual(status, 200)
        csp = headers["Content-Security-Policy"]
        self.assertIn("script-src 'self'", csp)
        self.assertIn("default-src 'none'", csp)
        self.assertNotIn("unsafe-inline", csp)
        # No inline script, no inline style, nothing from elsewhere.
        self.assertIsNone(re.search(r"<script(?![^>]*\bsrc=)", body))
        self.assertNotIn("style=", body)
        self.assertIsNone(re.search(r"(src|href)=\"(https?:)?//", body))
        for path in ("/console/app.js", "/console/app.css"):
            status, headers, text = get(self.http, path)
            self.assertEqual(status, 200)
            self.assertIsNone(re.search(r"https?://", text), path)
        self.assertEqual(get(self.http, "/console/nope.js")[0], 404)

    def test_console_end_to_end(self):
        d = self.driver
        d.get(self.base + "/console/")
        self.wait(lambda d: d.find_element(By.ID, "login-form")
                  .is_displayed(), "the login form")
        self.shot("01-login")
        # A wrong password is refused on the page.
        d.find_element(By.ID, "login-user").send_keys("admin")
        d.find_element(By.ID, "login-password").send_keys("wrong")
        d.find_element(By.ID, "login-submit").click()
        self.wait(lambda d: d.find_element(By.ID, "login-error").text,
                  "the login error")
        # The right one (after the back-off that failure started).
        deadline = time.monotonic() + TIMEOUT
        while True:
            d.find_element(By.ID, "login-user").clear()
            d.find_element(By.ID, "login-user").send_keys("admin")
            d.find_element(By.ID, "login-password").send_keys(ADMIN_PW)
            d.find_element(By.ID, "login-submit").click()
            try:
                WebDriverWait(d, 3, 0.2).until(
                    lambda d: d.find_element(By.ID, "nav").is_displayed())
                break
            except WebDriverException:
                self.assertLess(time.monotonic(), deadline, "no login")
        self.wait(lambda d: d.find_element(By.ID, "findings-view")
                  .is_displayed(), "the findings view")
        # A device connects and leaks.
        disconnected = threading.Event()
        cam = mqtt.Client(client_id="leaky-cam-7", protocol=mqtt.MQTTv5)
        cam.username_pw_set("cam", CAM_PW)
        cam.on_disconnect = lambda *a: disconnected.set()
        cam.connect("127.0.0.1", self.broker.port)
        cam.loop_start()
        try:
            cam.publish("cams/7/owner", '{"contact": "%s"}' % SECRET,
                        qos=1).wait_for_publish(TIMEOUT)
            self.wait(lambda d: [r for r in d.find_elements(
                By.CSS_SELECTOR, "#feed tr.finding")
                if "leaky-cam-7" in r.text and "email" in r.text],
                "the finding in the live feed")
            self.wait(lambda d: d.find_elements(
                By.CSS_SELECTOR, '#chart .bar-row[data-category="email"]'),
                "the email bar in the chart")
            bar = d.find_element(By.CSS_SELECTOR,
                                 '#chart .bar-row[data-category="email"]')
            self.assertGreaterEqual(int(bar.find_element(
                By.CLASS_NAME, "bar-value").text), 1)
            self.assertIn("cams/7/owner", d.find_element(
                By.ID, "top-topics").text)
            self.wait(lambda d: [b for b in d.find_elements(
                By.CSS_SELECTOR, "#timeline .tl-bar")
                if int(b.get_attribute("data-total")) >= 1 and
                "email" in b.get_attribute("title")],
                "the finding in the per-minute chart")
            self.shot("02-findings")
            # The client's page, then disconnect it.
            d.find_element(By.CSS_SELECTOR, "#feed a.client-link").click()
            self.wait(lambda d: d.find_element(By.ID, "client-view")
                      .is_displayed(), "the client's page")
            self.wait(lambda d: "cam" in d.find_element(
                By.ID, "client-info").text, "the client's details")
            self.wait(lambda d: "email" in d.find_element(
                By.ID, "client-findings").text, "the client's findings")
            self.shot("03-client")
            d.find_element(By.ID, "disconnect").click()
            self.wait(lambda d: d.find_element(By.ID, "client-status")
                      .text == "Disconnected.", "the disconnect answer")
            self.assertTrue(disconnected.wait(TIMEOUT))
            self.shot("04-disconnected")
        finally:
            cam.loop_stop()
        # The security events page shows the admin action.
        d.find_element(By.CSS_SELECTOR, 'nav [data-view="security"]').click()
        self.wait(lambda d: "admin_action" in d.find_element(
            By.ID, "security").text, "the admin action event")
        self.shot("05-security")
        # The configuration check of the running broker's file.
        d.find_element(By.CSS_SELECTOR, 'nav [data-view="check"]').click()
        self.wait(lambda d: self.broker.conf in d.find_element(
            By.ID, "check-file").text, "the configuration check")
        self.wait(lambda d: "high" in d.find_element(
            By.ID, "check-summary").text, "the check summary")
        self.shot("06-check")
        # The value is nowhere: not in the DOM, not in any API response
        # the page received, not in the console's own API answers.
        self.assertNotIn(SECRET, d.page_source)
        bodies = self.api_bodies()
        self.assertTrue(any("leaky-cam-7" in b for b in bodies))
        for b in bodies:
            self.assertNotIn(SECRET, b)
        for entry in d.get_log("browser"):
            self.assertNotIn("Content Security Policy", entry["message"])


if __name__ == "__main__":
    unittest.main()
