"""Headless Debian Chromium for scripts/measure_page_load.py and the end-to-end browser tests
(molecule/default): one place for its flags. Always /usr/bin/chromedriver: without a Service
naming it, Selenium Manager tries to download a driver from the internet."""

from __future__ import annotations

import tempfile
from typing import Any

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def headless_chromium(page_load_timeout: float = 60, network_log: bool = False) -> Any:
    """A Chrome WebDriver on a fresh profile. network_log: Chrome's performance log on (every
    response's URL, status and bytes on the wire), its cache off, so every load is a first visit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (*FLAGS, f"--user-data-dir={tempfile.mkdtemp(prefix='tmpnb-chromium-')}"):
        options.add_argument(flag)
    if network_log:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(page_load_timeout)
    if network_log:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    return driver


def _type_and_run(driver: Any, cell: Any, code: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    cell.click()
    ActionChains(driver).send_keys(code).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(
        Keys.SHIFT
    ).perform()


def _new_tab(driver: Any, wait: Any, tree: str) -> None:
    wait.until(lambda d: len(d.window_handles) > 1)
    driver.switch_to.window(next(h for h in driver.window_handles if h != tree))
    wait.until(lambda d: "/notebooks/" in d.current_url)


def notebook7_new_notebook_runs(driver: Any, wait: Any, code: str) -> str:
    """In Notebook 7's tree page: New -> Python 3 (ipykernel), as a person does; in the notebook's
    tab, once its kernel is idle, type CODE in the first cell, Shift+Enter; the output's text."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    new = "//div[contains(@class, 'lm-MenuBar-itemLabel') and normalize-space() = 'New']"
    wait.until(ec.element_to_be_clickable((By.XPATH, new))).click()
    item = "//div[contains(@class, 'lm-Menu-itemLabel') and starts-with(normalize-space(), 'Python 3')]"
    tree = driver.current_window_handle
    wait.until(ec.element_to_be_clickable((By.XPATH, item))).click()
    _new_tab(driver, wait, tree)
    idle = '.jp-Notebook-ExecutionIndicator[data-status="idle"]'
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, idle))
    _type_and_run(
        driver, wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".jp-Cell .cm-content"))), code
    )
    return wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".jp-OutputArea-output pre"))).text


def classic_new_notebook_runs(driver: Any, wait: Any, code: str) -> str:
    """The same in the classic Notebook 6 tree page: New -> Python 3, then CODE in the first cell."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    tree = driver.current_window_handle
    wait.until(ec.element_to_be_clickable((By.ID, "new-dropdown-button"))).click()
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#kernel-python3 a"))).click()
    _new_tab(driver, wait, tree)
    wait.until(
        lambda d: d.execute_script(
            "return !!(window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel"
            " && Jupyter.notebook.kernel.is_connected());"
        )
    )
    _type_and_run(
        driver, wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".cell .CodeMirror"))), code
    )
    out = (By.CSS_SELECTOR, ".output_subarea.output_stream pre")
    return wait.until(ec.visibility_of_element_located(out)).text
