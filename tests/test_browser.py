"""The app in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright): generate, scrub
the steps, sketch on SDEdit, paint a mask on Inpaint, make an anagram. Screenshots of every tab go to
tests/artifacts/; with DDPM_README_SHOT=1 (and bundled models) the Generate tab also goes to
docs/screenshot.png for the README, so a plain test run leaves tracked files alone.

Uses the bundled models when checkpoints/ has any (so the README screenshot shows real samples),
else tiny random ones. The tests share one page and run in file order.
"""
from __future__ import annotations

import io
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import app
import ddpm
from ddpm import images as im
from diffusion_lab import controls, examples, uploads
from diffusion_lab.lab import load_bundled
from diffusion_lab.tabs import illusions, sdedit

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
README_SHOT = ROOT / "docs" / "screenshot.png"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUN_TIMEOUT = 120_000  # ms: a whole run on a busy 2-core machine

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                "(apt-get install -y chromium); Playwright's own browser download is not used")


def tiny_models() -> dict[str, ddpm.DiffusionModel]:
    out = {}
    for name, size, channels, classes in (("mnist", 28, 1, [str(i) for i in range(10)]),
                                          ("emoji", 32, 3, ["Smileys & Emotion", "People & Body"])):
        torch.manual_seed(0)
        denoiser = ddpm.build("scratch", image_size=size, channels=channels, num_classes=len(classes),
                              widths=(8, 16, 16), attention=(False, False, True), layers_per_block=1)
        with torch.no_grad():
            for p in denoiser.parameters():
                p.add_(0.05 * torch.randn_like(p))
        out[name] = ddpm.DiffusionModel(denoiser.eval(), ddpm.NoiseSchedule(), classes, name, name=name,
                                        meta={"sampling": {"guidance": 3.0}} if channels == 3 else {})
    return out


@pytest.fixture(scope="module")
def zoo() -> tuple[dict[str, ddpm.DiffusionModel], bool]:
    """The bundled models (and True), or tiny random ones (and False) while checkpoints/ is empty."""
    models = load_bundled()[0]
    return (models, True) if models else (tiny_models(), False)


@pytest.fixture(scope="module")
def models(zoo) -> dict[str, ddpm.DiffusionModel]:
    return zoo[0]


@pytest.fixture(scope="module")
def bundled(zoo) -> bool:
    return zoo[1]


@pytest.fixture(scope="module")
def page(models):
    from playwright.sync_api import sync_playwright

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the browser needs the other core
    demo = app.build_demo(models)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _, url, _ = app.launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        page.goto(url)
        page.wait_for_selector("#model", timeout=30_000)
        yield page
        browser.close()
    demo.close()
    torch.set_num_threads(threads)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def wait_done(page, elem_id: str, prefix: str = "Done") -> str:
    """Wait until the status box of a tab starts with ``prefix`` (or an error toast appears); return the status."""
    page.wait_for_function(
        """([id, prefix]) => { const box = document.querySelector(`#${id} textarea, #${id} input`);
                   return (box && box.value.startsWith(prefix)) || document.querySelector('.toast-body'); }""",
        arg=[elem_id, prefix], timeout=RUN_TIMEOUT)
    toasts = page.locator(".toast-body")
    assert toasts.count() == 0, f"error: {toasts.first.inner_text()}"
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first.input_value()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def draw(page, canvas, points) -> None:
    """A stroke through ``points`` given as fractions (x, y) of the canvas box."""
    box = canvas.bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for point in xy[1:]:
        page.mouse.move(*point, steps=2)  # each move repaints (software WebGL): keep them few
    page.mouse.up()


def test_generate_then_scrub_the_steps(page, bundled):
    open_tab(page, "Generate")
    page.locator("#gen-run").click()
    status = wait_done(page, "gen-status")
    assert "seed 0" in status
    page.wait_for_selector("#gen-image img")
    page.wait_for_selector("#gen-files a, #gen-files .file-preview", timeout=10_000)
    if bundled and os.environ.get("DDPM_README_SHOT") == "1":  # real samples only, and only when asked
        README_SHOT.parent.mkdir(exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(README_SHOT))
    shot(page, "1-generate")

    open_tab(page, "Denoising steps")
    slider = page.locator("#steps-scrubber input[type=range]")
    slider.wait_for(timeout=10_000)
    assert int(slider.get_attribute("max")) == 20  # 20 steps, all kept, then the result
    assert page.locator("#steps-scrubber .t").first.inner_text() == "the result"
    label = page.locator("#steps-scrubber .t").first
    last = (label.inner_text(), page.locator("#steps-scrubber img.x").first.get_attribute("src"))
    slider.fill("0")
    assert label.inner_text() == "t = 999" and last[0] != "t = 999"
    assert page.locator("#steps-scrubber img.x").first.get_attribute("src") != last[1]
    # ten moves, each timed from the input event to its new frame decoded and painted
    timing = page.evaluate("""async () => {
        const s = document.querySelector('#steps-scrubber input[type=range]');
        const img = document.querySelector('#steps-scrubber img.x0');
        const ms = [];
        for (const i of [7, 12, 3, 19, 0, 15, 9, 1, 18, 5]) {
            const before = img.src, t0 = performance.now();
            s.value = i; s.dispatchEvent(new Event('input', {bubbles: true}));
            await img.decode();
            await new Promise(r => requestAnimationFrame(r));
            if (img.src !== before) ms.push(performance.now() - t0);
        }
        ms.sort((a, b) => a - b);
        return {moves: ms.length, median_ms: ms[ms.length >> 1], max_ms: ms[ms.length - 1]};
    }""")
    (ARTIFACTS / "scrub_timing.json").write_text(json.dumps(timing))
    assert timing["moves"] >= 9 and timing["max_ms"] < 250, timing  # a sanity bound; the budget is 50
    shot(page, "2-steps")
    page.locator("#steps-scrubber button.play").click()
    page.wait_for_function("() => +document.querySelector('#steps-scrubber input[type=range]').value > 9",
                           timeout=10_000)
    slider.fill("3")  # stops the play mid-way
    # another sample of the run: a click on its tile in the grid enlarges it, at the frame shown
    first = page.locator("#steps-scrubber .cap").inner_text()
    grid = page.locator("#steps-scrubber img.grid").bounding_box()
    page.mouse.click(grid["x"] + grid["width"] * 0.15, grid["y"] + grid["height"] * 0.25)
    page.wait_for_function("cap => document.querySelector('#steps-scrubber .cap').textContent !== cap", arg=first)
    assert slider.input_value() == "3" and page.locator("#steps-scrubber .pos").inner_text() == "frame 4 / 21"


def test_stop_says_where_the_run_stopped_and_offers_no_old_downloads(page):
    """After a finished run (the test above) a second, long one is stopped: the status says at which step, and
    stays, and the first run's downloads are gone (they would pass for this one's)."""
    open_tab(page, "Generate")
    steps = page.locator("#gen-steps input[type=number]")
    steps.fill("1000")
    steps.press("Enter")
    page.locator("#gen-run").click()
    wait_done(page, "gen-status", prefix="step ")
    page.locator("#gen-stop").click()
    status = wait_done(page, "gen-status", prefix="Stopped at step ")
    assert status.endswith("not a finished sample") and "/1000" in status
    page.wait_for_timeout(1500)  # three previews' time: none still on its way may take the status back
    assert page.locator("#gen-status textarea").input_value() == status
    assert page.locator("#gen-files a").count() == 0
    steps.fill("20")
    steps.press("Enter")


def test_sketch_on_sdedit(page):
    open_tab(page, "SDEdit")
    editor = page.locator("#sdedit-image")
    editor.locator("canvas").first.wait_for()
    editor.get_by_role("button", name="Clear canvas").click()
    editor.get_by_role("button", name="Brush", exact=True).click()
    page.wait_for_selector("#sdedit-image button[aria-label=Brush].highlight")
    draw(page, editor.locator("canvas").first, [(0.45, 0.2), (0.55, 0.2), (0.5, 0.8)])  # a "7"-ish stroke
    page.locator("#sdedit-run").click()
    status = wait_done(page, "sdedit-status")
    assert "seed" in status
    assert page.locator("#sdedit-gallery img").count() == len(sdedit.STRENGTHS)
    page.locator("#sdedit-scrubber input[type=range]").wait_for()
    assert page.locator("#sdedit-scrubber .row").count() == len(sdedit.STRENGTHS)
    shot(page, "4-sdedit")


def test_paint_a_mask_on_inpaint(page, tmp_path):
    open_tab(page, "Inpaint")
    editor = page.locator("#inpaint-editor")
    editor.locator("canvas").first.wait_for()
    digit = np.zeros((224, 224), np.uint8)
    digit[40:190, 100:124] = 255  # a "1", white on black like MNIST
    Image.fromarray(digit).save(tmp_path / "one.png")
    editor.locator("input[type=file]").set_input_files(str(tmp_path / "one.png"))
    page.wait_for_selector("#inpaint-editor button[aria-label=Brush].highlight")
    draw(page, editor.locator("canvas").first, [(0.3, 0.5), (0.7, 0.5)])
    page.locator("#inpaint-run").click()
    status = wait_done(page, "inpaint-status")
    masked = int(status.split(" · ")[1].split(" of ")[0])
    assert 0 < masked < 392, status  # the stroke, not the preset lower half
    page.wait_for_selector("#inpaint-result img")
    shot(page, "5-inpaint")


def test_make_an_anagram_then_screenshot_every_tab(page):
    open_tab(page, "Illusions")
    page.locator("#anagram-run").click()
    status = wait_done(page, "anagram-status")
    assert "6 / 9 rot180" in status
    page.wait_for_selector("#anagram-result img")
    page.locator("#hybrid-run").click()
    wait_done(page, "hybrid-status")
    small = page.locator("#hybrid-small img")
    small.wait_for()
    assert small.bounding_box()["height"] < 40, "from afar: shown at the model's own size"
    shot(page, "6-illusions")
    open_tab(page, "Forward process")
    page.locator("#forward-run").click()
    page.wait_for_function("() => document.querySelector('#forward-note textarea, #forward-note input').value"
                           ".startsWith('t = ')", timeout=RUN_TIMEOUT)
    shot(page, "3-forward")
    open_tab(page, "Denoising steps")  # now showing the last run: the hybrid
    page.locator("#steps-scrubber input[type=range]").wait_for()
    assert page.locator("#steps-scrubber .title").inner_text().startswith("Hybrid")
    shot(page, "2-steps-after-hybrid")


def test_switching_the_model_updates_the_class_lists(page, models):
    if len(models) < 2:
        pytest.skip("only one model to choose from")
    name, model = list(models.items())[1]
    open_tab(page, "Generate")
    page.locator("#model input").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.wait_for_function("name => document.querySelector('#model-info').innerText.includes(name)", arg=name,
                           timeout=30_000)
    page.wait_for_function("first => document.querySelector('#gen-classes').innerText.includes(first)",
                           arg=model.classes[0], timeout=30_000)
    # the Forward tab still showed the first model's example, untouched: it now shows this model's first one
    first = sorted((examples.EXAMPLES_DIR / model.dataset).glob("*.png"))[0]
    expected = im.to_display(uploads.sketch(str(first), model), im.display_scale(model.image_size))
    open_tab(page, "Forward process")
    before = page.locator("#forward-0 img").get_attribute("src")
    page.wait_for_timeout(1000)  # the example follows the model in its own event
    page.locator("#forward-run").click()
    page.wait_for_function("old => { const img = document.querySelector('#forward-0 img'); "
                           "return img && img.getAttribute('src') !== old; }", arg=before, timeout=RUN_TIMEOUT)
    body = page.request.get(page.locator("#forward-0 img").get_attribute("src")).body()
    seen = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))
    assert seen.shape == expected.shape and np.abs(seen.astype(int) - expected).max() <= 1


def test_an_illusion_example_of_another_model_loads_it_and_runs(page, models):
    """The example buttons name their classes (a table would blank classes the current model lacks);
    a click switches the model, keeps the example's classes, and the anagram runs with them."""
    name, model = list(models.items())[-1]
    a, b, view = illusions.presets(model, illusions.ANAGRAMS, "rot180")[0]
    open_tab(page, "Illusions")
    page.get_by_text(f"{name}: {a} / {b} {illusions.view_label(view)}", exact=True).click()
    page.wait_for_function("name => document.querySelector('#model-info').innerText.includes(name)", arg=name,
                           timeout=30_000)
    page.locator("#anagram-run").click()
    wait_done(page, "anagram-status", prefix=f"Done: {name} · {a} / {b} {view}")  # the earlier one said Done too
    shot(page, "7-illusion-example")


def test_a_model_switch_moves_the_anagram_transform_with_its_classes(page, models):
    """After the example above (the last model's pair and transform), a switch in the Model box to the first
    model brings that model's preset pair together with its own transform, never the old pair's."""
    (name, model), last = next(iter(models.items())), list(models.values())[-1]
    a, b, view = illusions.presets(model, illusions.ANAGRAMS, "rot180")[0]
    if view == illusions.presets(last, illusions.ANAGRAMS, "rot180")[0][2]:
        pytest.skip("the first and last models' anagrams use the same transform")
    page.locator("#model input").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.wait_for_function("name => document.querySelector('#model-info').innerText.includes(name)", arg=name,
                           timeout=30_000)
    page.wait_for_function("want => document.querySelector('#anagram-view input').value === want",
                           arg=f"{illusions.view_label(view)} ({view})", timeout=10_000)
    page.locator("#anagram-run").click()
    wait_done(page, "anagram-status", prefix=f"Done: {name} · {a} / {b} {view}")


def test_generate_guidance_follows_the_model_until_the_user_moves_it(page, models):
    """Each model brings its own default guidance to the Generate tab; once the user sets one, it stays."""
    defaults = {name: m.default_guidance for name, m in models.items()}
    if len(set(defaults.values())) < 2:
        pytest.skip("every model has the same default guidance")
    open_tab(page, "Generate")
    slider = page.locator("#gen-guidance input[type=number]")

    def switch(name, follows=False):
        page.locator("#model input").click()
        page.get_by_role("option", name=name, exact=True).click()
        page.wait_for_function("name => document.querySelector('#model-info').innerText.includes(name)", arg=name,
                               timeout=30_000)
        if follows:  # the slider follows in an event after the model's: on a busy machine it can take seconds
            page.wait_for_function("want => Number(document.querySelector('#gen-guidance input[type=number]').value)"
                                   " === want", arg=defaults[name], timeout=15_000)
        page.wait_for_timeout(1000)  # and nothing moves it again after that

    first, other = min(defaults, key=defaults.get), max(defaults, key=defaults.get)
    label = {value: text for text, value in controls.SAMPLERS}
    sampler = page.locator("#gen-sampler input")
    for name in (first, other, first):
        switch(name, follows=True)
        assert float(slider.input_value()) == defaults[name], name
        assert sampler.input_value() == label[models[name].default_sampler], name  # and its sampler
    slider.fill("5")
    slider.press("Enter")
    switch(other)
    assert float(slider.input_value()) == 5


def test_a_model_that_fails_to_load_says_why(page, models):
    """A typo in the Model box: its error shows (a toast), and a model picked after it works again."""
    page.locator("#model input").fill("no-such-model")
    page.locator("#model input").press("Enter")
    page.wait_for_selector(".toast-body", timeout=30_000)
    assert "no-such-model" in page.locator(".toast-body").first.inner_text()
    page.locator(".toast-close").first.click()
    page.wait_for_selector(".toast-body", state="detached", timeout=10_000)
    name = next(iter(models))
    page.locator("#model input").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.wait_for_function("name => document.querySelector('#model-info').innerText.includes(name)", arg=name,
                           timeout=30_000)
    open_tab(page, "Generate")
    page.locator("#gen-run").click()
    wait_done(page, "gen-status", prefix=f"Done: {name}")
