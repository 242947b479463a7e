"""Opens report pages in headless Chromium through chromedriver (selenium) and checks what a
reader would see: no console message, every chart (`svg.chart`) laid out with a non-empty box and
at least one drawn shape with a non-empty box, and saves a full-page screenshot of each.

  report_browser.py SCREENSHOT_DIR PAGE.html [PAGE.html ...]

Exits 1 on a problem, naming the page and the chart.
"""
import os
import sys
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service


def browser(profile):
    o = Options()
    o.binary_location = "/usr/bin/chromium"
    # The flags this closed network needs: no background connections, a fresh profile.
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                 f"--user-data-dir={profile}", "--window-size=1100,1000"]:
        o.add_argument(flag)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)


CHARTS = """
return [...document.querySelectorAll('svg.chart')].map(svg => {
  const box = svg.getBoundingClientRect();
  const shapes = [...svg.querySelectorAll('rect, circle, polyline')]
    .map(s => s.getBBox()).filter(b => b.width > 0 && b.height > 0).length;
  return {title: svg.getAttribute('aria-label'), width: box.width, height: box.height, shapes};
});
"""


def main():
    shots, pages = sys.argv[1], sys.argv[2:]
    os.makedirs(shots, exist_ok=True)
    bad = 0
    with tempfile.TemporaryDirectory() as profile:
        driver = browser(profile)
        try:
            for page in pages:
                name = os.path.basename(os.path.dirname(os.path.dirname(page)))
                driver.get("file://" + os.path.abspath(page))
                logs = driver.get_log("browser")
                for entry in logs:
                    print(f"{name}: console {entry['level']}: {entry['message']}")
                bad += bool(logs)
                charts = driver.execute_script(CHARTS)
                empty = [c for c in charts if c["width"] <= 0 or c["height"] <= 0 or c["shapes"] == 0]
                for c in empty:
                    print(f"{name}: chart `{c['title']}` draws nothing ({c})")
                bad += bool(empty) + (not charts)
                height = driver.execute_script("return document.documentElement.scrollHeight")
                driver.set_window_size(1100, height)
                shot = os.path.join(shots, f"report-{name}.png")
                driver.save_screenshot(shot)
                verdict = "PROBLEMS above" if logs or empty or not charts else "no console message"
                print(f"{name}: {len(charts) - len(empty)} of {len(charts)} charts drawn, {verdict}, "
                      f"screenshot {shot} ({os.path.getsize(shot)} bytes, 1100x{height})")
        finally:
            driver.quit()
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
