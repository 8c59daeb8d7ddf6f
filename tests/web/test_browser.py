"""The review page in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium)
against a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from selfinstruct.web.app import ReviewConfig, create_app

from .conftest import XSS_INSTRUCTION

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
        reason="chromium/chromedriver not installed (run .ci/install-browser.sh)",
    ),
]

from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def server(run_dir: Path) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(ReviewConfig(run_dir, sample=5, seed=0))
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _inert(driver: object) -> None:
    """The `<script>`/`onerror` instruction did nothing: no window variable, title untouched."""
    assert driver.execute_script("return typeof window.__xss") == "undefined"  # type: ignore[attr-defined]
    assert "pwned" not in driver.title  # type: ignore[attr-defined]


def _keys(driver: object, *keys: str) -> None:
    ActionChains(driver).send_keys(*keys).perform()  # type: ignore[arg-type]


def _done(driver: object) -> str | None:
    # Looked up and read in one script: an element handle from a page that a submitted form is replacing
    # can fail in several ways (stale, or chromedriver's "node does not belong to the document").
    return driver.execute_script(  # type: ignore[attr-defined]
        "const e = document.getElementById('done-count'); return e ? e.innerText.trim() : null;"
    )


def test_browse_search_rate_with_keys_and_summary(server: str, browser: object) -> None:
    d = browser
    # Elements go stale while a submitted form loads the next page, and chromedriver may report that as
    # a plain WebDriverException: keep polling through any of them (a real failure still times out).
    wait = WebDriverWait(d, 20, ignored_exceptions=(WebDriverException,))
    d.get(server + "/browse")  # type: ignore[attr-defined]
    assert d.title.startswith("Browse")  # type: ignore[attr-defined]
    cells = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#results td.text")]  # type: ignore[attr-defined]
    assert XSS_INSTRUCTION in cells  # shown as text, tags included
    _inert(d)

    # Search: "/" focuses the box.
    _keys(d, "/")
    assert d.switch_to.active_element.get_attribute("id") == "search"  # type: ignore[attr-defined]
    _keys(d, "sort the", Keys.ENTER)
    wait.until(lambda drv: "q=sort" in drv.current_url)
    # The URL changes when the results page commits, possibly before its rows are there: poll the rows.
    wait.until(
        lambda drv: (
            [r.text for r in drv.find_elements(By.CSS_SELECTOR, "#results td.text")]
            == ["Sort the numbers in ascending order."]
        )
    )

    # The XSS item's detail page: instance markup stays text too.
    d.get(server + "/browse?q=markup")  # type: ignore[attr-defined]
    d.find_element(By.CSS_SELECTOR, "#results a").click()  # type: ignore[attr-defined]
    wait.until(lambda drv: "/item/" in drv.current_url)
    assert "<script>window.__xss=3</script>" in d.find_element(By.ID, "instances").text  # type: ignore[attr-defined]
    _inert(d)

    # Rating asks for a name first.
    d.get(server + "/rate")  # type: ignore[attr-defined]
    wait.until(lambda drv: "/rater" in drv.current_url)
    d.find_element(By.ID, "rater-input").send_keys("Ann", Keys.ENTER)  # type: ignore[attr-defined]
    wait.until(lambda drv: drv.current_url.endswith("/rate"))
    # The URL changes when the navigation commits, before the new page has loaded: wait for its counter.
    wait.until(lambda drv: _done(drv) == "0")

    # Three items rated with the keyboard only: y/n per question, the third answer saves.
    seen = []
    for n, answers in enumerate(["yyy", "yny", "nnn"], start=1):
        seen.append(d.find_element(By.ID, "rate-item").get_attribute("data-key"))  # type: ignore[attr-defined]
        _inert(d)
        for key in answers:
            _keys(d, key)
        wait.until(lambda drv, n=n: _done(drv) == str(n))
    assert len(set(seen)) == 3

    d.refresh()  # type: ignore[attr-defined]
    assert _done(d) == "3"
    # Going back to a rated item shows the saved answers.
    _keys(d, Keys.ARROW_LEFT)
    wait.until(lambda drv: "pos=" in drv.current_url)
    checked = wait.until(
        lambda drv: (
            drv.execute_script(
                "return Array.from(document.querySelectorAll('#rate-form input:checked'), e => e.value);"
            )
            or None
        )  # an empty list means the page is still loading: poll again
    )
    assert checked == ["no", "no", "no"]

    d.get(server + "/summary")  # type: ignore[attr-defined]
    table = d.find_element(By.ID, "table2").text  # type: ignore[attr-defined]
    # 3 ratings: valid 2/3, input 1/3, output 2/3, all yes 1/3
    assert "all raters 3 66.7% 33.3% 66.7% 33.3%" in table
    assert "Ann 3 66.7% 33.3% 66.7% 33.3%" in table
    _inert(d)
