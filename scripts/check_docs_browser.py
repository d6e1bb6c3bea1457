"""Opens the built docs site's pictured pages in headless Chromium and checks their pictures.

    python scripts/check_docs_browser.py [SITE_DIR] [SCREENSHOT_DIR]

(defaults: build/site, build/docs-screenshots). For each picture of the tutorial page (the
graphs tapegrad.viz drew while the site was built) and of "How it works" (the layers, drawn
by Graphviz during the build): the browser loaded it (``complete``,
a natural size), it is shown at a real size on the page, and its screenshot, taken from the
page as the browser renders it, is not blank (enough ink, and both light and dark pixels).
The screenshots (each picture, and the top of the page) are written to SCREENSHOT_DIR to be
looked at. Needs Debian's ``chromium`` and ``chromium-driver`` (scripts/test.sh installs
them) and the ``selenium`` and ``pillow`` packages (the test extra). Exits 1 naming what
failed.
"""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path
from typing import List

from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

# each page, and the fewest pictures it has
PAGES = {
    "tutorial/index.html": 3,  # the neuron before and after backward, the linear layer
    "architecture/index.html": 1,  # the layers
}


def ink(png: bytes) -> tuple[float, int, int]:
    """The share of pixels that are not near-white, and the darkest and lightest grey levels."""
    grey = Image.open(io.BytesIO(png)).convert("L")
    hist = grey.histogram()
    total = sum(hist)
    dark = sum(hist[:200])
    levels = [i for i, n in enumerate(hist) if n]
    return dark / total, levels[0], levels[-1]


def check_page(driver: webdriver.Chrome, path: Path, name: str, fewest: int, shots: Path) -> List[str]:
    """Loads one page; returns what is wrong with its pictures (and saves their screenshots)."""
    failures: List[str] = []
    driver.get(path.as_uri())
    driver.save_screenshot(str(shots / f"{name}-top.png"))
    headings = driver.find_elements(By.CSS_SELECTOR, "article h1")
    if not headings:
        return [f"{name}: {path} has no article heading: is it a page of the built site?"]
    print(f"{name}: {headings[0].text!r}")
    images = driver.find_elements(By.CSS_SELECTOR, "article img")
    if len(images) < fewest:
        failures.append(f"{name}: {len(images)} pictures on the page, where it has at least {fewest}")
    for k, img in enumerate(images):
        src = img.get_attribute("src") or ""
        picture = src.rsplit("/", 1)[-1]
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", img)
        complete, natural_w, natural_h, shown_w, shown_h = driver.execute_script(
            "const i = arguments[0], r = i.getBoundingClientRect(); "
            "return [i.complete, i.naturalWidth, i.naturalHeight, r.width, r.height];", img)
        if not complete or natural_w == 0 or natural_h == 0:
            failures.append(f"{name}/{picture}: the browser did not load it (complete={complete}, "
                            f"size {natural_w}x{natural_h})")
            continue
        if shown_w < 100 or shown_h < 30:
            failures.append(f"{name}/{picture}: shown at {shown_w:.0f}x{shown_h:.0f} px")
        png = img.screenshot_as_png
        (shots / f"{name}-{k}-{Path(picture).stem}.png").write_bytes(png)
        share, darkest, lightest = ink(png)
        print(f"  {picture}: {natural_w}x{natural_h}, shown {shown_w:.0f}x{shown_h:.0f} px, "
              f"{share:.1%} ink, grey levels {darkest}..{lightest}")
        if share < 0.01 or darkest > 120 or lightest < 200:
            failures.append(f"{name}/{picture}: looks blank ({share:.2%} ink, grey levels {darkest}..{lightest})")
    return failures


def main(argv: List[str]) -> int:
    site = Path(argv[1] if len(argv) > 1 else "build/site").resolve()
    shots = Path(argv[2] if len(argv) > 2 else "build/docs-screenshots").resolve()
    for page in PAGES:
        if not (site / page).is_file():
            print(f"check_docs_browser: {site / page} does not exist: build the site first (mkdocs build -d {site})")
            return 1
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        print("check_docs_browser: needs Chromium and its driver: apt-get install chromium chromium-driver")
        return 1
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)

    options = Options()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1600", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    failures: List[str] = []
    checked = 0
    try:
        for page, fewest in PAGES.items():
            failures += check_page(driver, site / page, page.split("/")[0], fewest, shots)
            checked += 1
    finally:
        driver.quit()
    for f in failures:
        print(f"check_docs_browser: {f}")
    if not failures:
        print(f"check_docs_browser: the pictures of {checked} pages load and are drawn; screenshots in {shots}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
