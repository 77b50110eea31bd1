"""Reproduce anything, in a real headless Chromium: a result's panel shows its Python, its command line and an
absolute link; opening a link with query parameters selects its tab and fills its controls (another model's
too, whose own defaults must not overwrite the link's); a bad link is a warning, not a crash; the Forward tab's
schedule chart follows t. Screenshots go to tests/artifacts/ (and $DDPM_SCREENS, when set).

Uses the bundled models when checkpoints/ has them, else tiny random ones (tests/test_browser.py's).
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest
import torch
from test_browser import ARGS, ARTIFACTS, CHROMIUM, RUN_TIMEOUT, open_tab, tiny_models, wait_done

import app
import ddpm
from diffusion_lab.lab import load_bundled

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")


@pytest.fixture(scope="module")
def site():
    """(browser, the app's url, its models)."""
    from playwright.sync_api import sync_playwright

    from app_fixtures import free_port

    models = load_bundled()[0] or tiny_models()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the browser needs the other core
    demo = app.build_demo(models)
    _, url, _ = app.launch(demo, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                           quiet=True)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser, url, models
        browser.close()
    demo.close()
    torch.set_num_threads(threads)


def shot(page, name: str) -> None:
    for folder in filter(None, [ARTIFACTS, os.environ.get("DDPM_SCREENS")]):
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"repro-{name}.png"), full_page=True)


def opened(browser, url: str):
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    page.goto(url)
    page.wait_for_selector("#model", timeout=30_000)
    return page


def number(page, elem_id: str) -> float:
    return float(page.locator(f"#{elem_id} input[type=number]").first.input_value())


def test_a_result_shows_its_texts_and_its_link_opens_the_same_settings(site):
    browser, url, models = site
    page = opened(browser, url)
    page.locator("#gen-steps input[type=number]").fill("4")
    page.locator("#gen-steps input[type=number]").press("Enter")
    page.locator("#gen-run").click()
    wait_done(page, "gen-status")
    page.locator("#generate-repro").get_by_text("Reproduce this result").click()
    page.wait_for_function("() => (document.querySelector('#generate-link textarea, #generate-link input') || {})"
                           ".value", timeout=10_000)
    link = page.locator("#generate-link textarea, #generate-link input").first.input_value()
    assert link.startswith(url.rstrip("/") + "/?recipe=generate"), link
    code = page.locator("#generate-python").inner_text()
    assert "sample_batches(model" in code and "seed=0" in code
    assert "python -m ddpm sample" in page.locator("#generate-cli").inner_text()
    page.locator("#generate-repro").scroll_into_view_if_needed()
    shot(page, "generate-panel")
    page.close()

    # the same link with other settings, on another model if there is one: its own defaults must not win
    other = list(models)[-1]
    query = dict(parse_qsl(link.split("?", 1)[1]))
    labels = models[other].classes[:2] * 3
    query.update(model=other, steps="7", guidance="4.5", seed="123")
    pairs = [(k, v) for k, v in query.items() if k != "labels"] + [("labels", c) for c in labels]
    page = opened(browser, f"{url}?{urlencode(pairs)}")
    page.wait_for_function("() => document.querySelector('#gen-steps input[type=number]').value === '7'",
                           timeout=20_000)
    page.wait_for_function("name => document.querySelector('#model-info').innerText.includes(name)", arg=other,
                           timeout=30_000)
    page.wait_for_timeout(1500)  # the Model box's followers have run by now
    assert page.locator("#model input").first.input_value() == other
    assert (number(page, "gen-steps"), number(page, "gen-per-class"), number(page, "gen-guidance")) == (7, 3, 4.5)
    chosen = page.locator("#gen-classes .token").all_inner_texts()
    assert [c.strip() for c in chosen] == models[other].classes[:2]
    assert page.get_by_role("tab", name="Generate", exact=True).get_attribute("aria-selected") == "true"
    shot(page, "generate-from-link")
    page.close()


def test_an_illusion_link_selects_its_tab_and_a_bad_link_warns(site):
    browser, url, models = site
    name = next(iter(models))
    a, b = models[name].classes[:2]
    query = ddpm.reproduce.to_query("anagram", name, {"parts": [(a, "identity"), (b, "flip_v")], "n": 3,
                                                      "best_of": 2}, ddpm.Settings(steps=9, seed=5))
    page = opened(browser, f"{url}?{query}")
    page.wait_for_function("() => (document.querySelector('#anagram-candidates input[type=number]') || {})"
                           ".value === '2'", timeout=20_000)
    assert page.get_by_role("tab", name="Illusions", exact=True).get_attribute("aria-selected") == "true"
    assert "flip_v" in page.locator("#anagram-view input").first.input_value()
    shot(page, "anagram-from-link")
    page.close()

    page = opened(browser, f"{url}?recipe=generate&model=../../etc&steps=3&colour=red")
    page.wait_for_selector(".toast-body", timeout=20_000)
    text = page.locator(".toast-body").first.inner_text()
    assert "could not be opened" in text and "etc" in text
    page.close()
    page = opened(browser, f"{url}?recipe=generate&model={name}&steps=many")
    page.wait_for_selector(".toast-body", timeout=20_000)
    assert "steps is not a whole number" in page.locator(".toast-body").first.inner_text()
    shot(page, "bad-link")
    page.close()
    os.environ["DDPM_ALLOW_LOCAL_MODELS"] = "0"  # as on a Space: the Model box's rule refuses folders
    try:
        page = opened(browser, f"{url}?recipe=generate&model=/tmp&steps=3")
        page.wait_for_selector(".toast-body", timeout=20_000)
        assert "not folders" in page.locator(".toast-body").first.inner_text()
        assert page.locator("#model input").first.input_value() == name
        page.close()
    finally:
        del os.environ["DDPM_ALLOW_LOCAL_MODELS"]


def test_an_sdedit_result_names_the_picture_it_saved(site):
    browser, url, _ = site
    page = opened(browser, url)
    open_tab(page, "SDEdit")
    page.locator("#sdedit-run").click()
    wait_done(page, "sdedit-status")
    page.locator("#sdedit-repro").get_by_text("Reproduce this result").click()
    page.wait_for_function("() => document.querySelector('#sdedit-python').textContent.includes('image.png')",
                           timeout=10_000)
    assert "image" in page.locator("#sdedit-inputs").inner_text()  # the name is split around its ".png"
    code = page.locator("#sdedit-python").inner_text()
    assert "prepare_image('" in code and "/image.png'" in code
    assert "python -m ddpm sdedit" in page.locator("#sdedit-cli").inner_text()
    page.locator("#sdedit-repro").scroll_into_view_if_needed()
    shot(page, "sdedit-panel")
    link = page.locator("#sdedit-link textarea, #sdedit-link input").first.input_value()
    page.close()

    page = opened(browser, link.replace("steps=20", "steps=6"))  # the saved picture comes back in the editor
    page.wait_for_function("() => (document.querySelector('#sdedit-repro') || {}).offsetParent !== null",
                           timeout=20_000)
    page.locator("#sdedit-run").click()
    status = wait_done(page, "sdedit-status")
    assert "6 steps" in status and "seed 0" in status
    shot(page, "sdedit-from-link")
    page.close()


def test_the_forward_tab_charts_the_schedule_and_marks_t(site):
    browser, url, _ = site
    page = opened(browser, url)
    open_tab(page, "Forward process")
    chart = page.locator("#forward-schedule-chart")
    chart.wait_for(timeout=10_000)
    assert "t = 500" in chart.inner_text()
    page.locator("#forward-t input[type=number]").fill("900")
    page.locator("#forward-t input[type=number]").press("Enter")
    page.wait_for_function("() => document.querySelector('#forward-schedule-chart').textContent.includes('t = 900')",
                           timeout=RUN_TIMEOUT)
    page.locator("#forward-run").click()
    page.wait_for_function("() => (document.querySelector('#forward-note textarea') || {}).value", timeout=RUN_TIMEOUT)
    page.locator("#forward-repro").get_by_text("Reproduce this result").click()
    page.locator("#forward-schedule").scroll_into_view_if_needed()
    shot(page, "forward-schedule")
    page.close()
