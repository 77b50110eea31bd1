"""What a new user hit in Chromium, each checked in a real headless browser (Debian's /usr/bin/chromium
through Playwright) with tiny random models: the inpainting preset after a model switch, a sketch begun
in the margin, the page on a 390 px phone, and a Play button that must not move the slider."""
from __future__ import annotations

import io
import re

import numpy as np
import pytest
import torch
from PIL import Image

from app_fixtures import serve, tiny_models
from diffusion_lab.examples import EXAMPLES_DIR
from test_browser import ARGS, CHROMIUM, draw, open_tab, wait_done

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def url():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the browser needs the other core
    demo, url = serve(tiny_models())
    yield url
    demo.close()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


def new_page(browser, url, viewport=None, theme="light"):
    page = browser.new_page(viewport=viewport or {"width": 1360, "height": 900})
    page.goto(f"{url}?__theme={theme}")
    page.wait_for_selector("#model", timeout=30_000)
    return page


def switch_model(page, name):
    page.locator("#model input").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.wait_for_function("name => document.querySelector('#model-info').innerText.includes(name)", arg=name,
                           timeout=30_000)
    page.wait_for_timeout(1500)  # the editors follow in the events after the model's


def picture_of(page, selector) -> np.ndarray:
    body = page.request.get(page.locator(selector).get_attribute("src")).body()
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB")).astype(int)


def test_the_inpainting_preset_shows_counts_and_keeps_its_colour_out_after_a_model_switch(browser, url):
    """Switch to emoji before ever opening Inpaint (the tab renders then): the preset lower half is shown,
    a stroke adds to it, and the kept half reaches the model as the picture was, with no mask colour in it."""
    page = new_page(browser, url)
    switch_model(page, "emoji")
    open_tab(page, "Inpaint")
    editor = page.locator("#inpaint-editor")
    canvas = editor.locator("canvas").first
    canvas.wait_for()
    page.wait_for_timeout(1500)
    shown = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("RGB")).astype(int)
    lower = shown[int(shown.shape[0] * 0.6):int(shown.shape[0] * 0.9), shown.shape[1] // 3:2 * shown.shape[1] // 3]
    assert (lower[..., 0] - lower[..., 1]).mean() > 100, "the preset mask is visible on first view"
    assert "Upload or paste" not in editor.inner_text(), "no placeholder text over the picture"
    editor.get_by_role("button", name="Brush", exact=True).click()
    page.wait_for_selector("#inpaint-editor button[aria-label=Brush].highlight")
    draw(page, canvas, [(0.35, 0.2), (0.65, 0.2)])  # a stroke across the kept upper half
    page.get_by_label("RePaint resampling").uncheck()
    page.locator("#inpaint-run").click()
    status = wait_done(page, "inpaint-status")
    masked = int(status.split(" · ")[1].split(" of ")[0])
    assert masked > 512, f"the stroke and the preset (512 of 1024 pixels) count together: {status}"
    seen = picture_of(page, "#inpaint-seen img")
    original = np.asarray(Image.open(sorted((EXAMPLES_DIR / "emoji").glob("*.png"))[0]).convert("RGB")).astype(int)
    top = slice(0, seen.shape[0] // 8)  # above the stroke: kept, so the picture itself
    assert np.abs(seen[top] - original[top]).mean() < 12, "the kept part is the picture, untinted"
    page.close()


def test_a_sketch_stroke_begun_at_the_edge_of_the_box_draws(browser, url):
    page = new_page(browser, url)
    open_tab(page, "SDEdit")
    editor = page.locator("#sdedit-image")
    editor.locator("canvas").first.wait_for()
    editor.get_by_role("button", name="Clear canvas").click()
    editor.get_by_role("button", name="Brush", exact=True).click()
    page.wait_for_selector("#sdedit-image button[aria-label=Brush].highlight")
    # begun at the right edge of the box, where the editor used to show a grey margin beside the canvas
    draw(page, editor.locator(".image-container").first, [(0.97, 0.4), (0.5, 0.45), (0.5, 0.85)])
    page.locator("#sdedit-run").click()
    status = wait_done(page, "sdedit-status")  # an empty sketch would be an error toast
    assert status.startswith("Done")
    page.close()


def test_on_a_phone_everything_is_reachable_and_pictures_fill_the_width(browser, url):
    page = new_page(browser, url, PHONE)
    model, info = page.locator("#model").bounding_box(), page.locator("#model-info").bounding_box()
    assert info["y"] >= model["y"] + model["height"] - 1, "the model description sits under the Model box"
    assert model["width"] > 0.8 * PHONE["width"]
    for name in ("Generate", "Denoising steps", "Forward process", "SDEdit", "Inpaint", "Illusions"):
        tab = page.get_by_role("tab", name=name, exact=True)
        assert tab.is_visible(), f"{name} is in the tab bar, not behind a menu"
        box = tab.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    page.locator("#gen-run").click()
    wait_done(page, "gen-status")
    grid = page.locator("#gen-image img").bounding_box()
    assert grid["width"] > 0.8 * PHONE["width"], grid
    assert page.locator("#gen-image").bounding_box()["height"] < grid["height"] + 80, "no tall empty box around it"
    open_tab(page, "Denoising steps")
    page.locator("#steps-scrubber input[type=range]").wait_for()
    # each panel's visible box (its picture is a crop of the step's grid sheet, larger than the box)
    tops = [page.locator(f"#steps-scrubber .zoom:has(img.{key})").first.bounding_box() for key in ("x", "x0", "eps")]
    assert max(b["y"] for b in tops) - min(b["y"] for b in tops) < 2, f"panels side by side, not staggered: {tops}"
    assert all(b["x"] + b["width"] <= PHONE["width"] for b in tops)
    page.close()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_play_and_pause_move_nothing_and_the_scrubber_reads_in_both_themes(browser, url, theme):
    page = new_page(browser, url, theme=theme)
    page.locator("#gen-steps input[type=number]").fill("60")
    page.locator("#gen-steps input[type=number]").press("Enter")
    page.locator("#gen-run").click()
    wait_done(page, "gen-status")
    open_tab(page, "Denoising steps")
    button, slider = page.locator("#steps-scrubber button.play"), page.locator("#steps-scrubber input[type=range]")
    slider.wait_for()
    before = button.bounding_box(), slider.bounding_box()
    button.click()
    page.wait_for_function("() => document.querySelector('#steps-scrubber button.play').textContent.includes('Pause')")
    page.wait_for_function("() => +document.querySelector('#steps-scrubber input[type=range]').value > 8")
    during = button.bounding_box(), slider.bounding_box()
    assert during == before, f"Play -> Pause moved the button or the slider: {before} -> {during}"
    colours = page.evaluate(r"""() => { const b = document.querySelector('#steps-scrubber button.play');
        const s = getComputedStyle(b);
        let e = document.querySelector('#steps-scrubber'), behind = 'rgba(0, 0, 0, 0)';
        while (e && /rgba\(.*, 0\)$|transparent/.test(behind)) {  // the first painted background behind it
            behind = getComputedStyle(e).backgroundColor; e = e.parentElement; }
        return [s.color, s.backgroundColor, getComputedStyle(document.querySelector('#steps-scrubber .cap')).color,
                behind]; }""")

    def luminance(css):
        r, g, b = (float(v) for v in re.findall(r"[\d.]+", css)[:3])
        return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255
    text, fill, caption, body = (luminance(c) for c in colours)
    assert abs(text - fill) > 0.4 and abs(caption - body) > 0.4, f"{theme}: unreadable {colours}"
    page.close()
