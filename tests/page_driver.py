"""Drive the page of `seqnlp serve` in headless Chromium (Debian's chromium and chromium-driver, through
Selenium): fill and submit every form a loaded model answers, and read what the page rendered.

As a script it saves the screenshot the docs show: ``python tests/page_driver.py http://127.0.0.1:8000 OUT.png``
against `seqnlp serve` in a checkout with every task's package.
"""

import sys
from contextlib import contextmanager

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
INPUTS = {  # form -> (field id, text typed)
    "classify": [("classify-text", "The striker scored twice as the champions won the final")],
    "generate": [("generate-prefix", "my lord"), ("generate-length", "80")],
    "tag": [("tag-text", "Angela Merkel met Emmanuel Macron in Berlin on Monday.")],
    "duplicates": [("duplicates-first", "How can I learn to code?"),
                   ("duplicates-second", "What is the best way to learn programming?")],
    "similar": [("similar-question", "How do I improve my English?")],
}


@contextmanager
def browser(width=1200, height=2400):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def try_every_form(driver, url, timeout=60):
    """Open the page, type into each visible form, submit it and wait for its result; what each form rendered
    (its result element's text and, for classify and tag, the bars' labels and the highlighted entities)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, timeout)
    wait.until(lambda d: d.find_element(By.ID, "status").text.startswith("Serving"))
    rendered = {"status": driver.find_element(By.ID, "status").text}
    for form, fields in INPUTS.items():
        section = driver.find_element(By.ID, form)
        if not section.is_displayed():
            continue
        for field, text in fields:
            box = driver.find_element(By.ID, field)
            box.clear()
            box.send_keys(text)
        driver.find_element(By.ID, f"{form}-submit").click()
        result = driver.find_element(By.ID, f"{form}-result")
        wait.until(lambda d: result.text.strip() not in ("", "…"))
        rendered[form] = {
            "text": result.text,
            "card": section.find_element(By.CSS_SELECTOR, "[data-card]").text,
            "bars": [bar.get_attribute("data-label") for bar in result.find_elements(By.CSS_SELECTOR, ".bar")],
            "entities": [(mark.get_attribute("data-type"),  # the entity's words, without the type label after them
                          driver.execute_script("return arguments[0].firstChild.textContent", mark))
                         for mark in result.find_elements(By.CSS_SELECTOR, "mark")],
            "errors": [error.text for error in result.find_elements(By.CSS_SELECTOR, ".error")],
        }
    return rendered


if __name__ == "__main__":
    with browser() as chromium:
        for name, shown in try_every_form(chromium, sys.argv[1]).items():
            print(name, shown)
        chromium.set_window_size(1200, chromium.execute_script("return document.documentElement.scrollHeight") + 200)
        chromium.save_screenshot(sys.argv[2])
