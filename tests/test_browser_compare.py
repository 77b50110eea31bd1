"""The Compare tab in a real headless Chromium (Debian's /usr/bin/chromium through Playwright), tiny random
models: pick what to vary, run a comparison, scrub its columns together on the shared axis."""
from __future__ import annotations

import json

import pytest

from test_browser import ARTIFACTS, CHROMIUM, open_tab, wait_done
from test_browser_fixes import browser, new_page, url  # noqa: F401 - the fixtures, shared

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")


def texts(page, selector: str) -> list[str]:
    return page.locator(selector).all_inner_texts()


def srcs(page) -> list[str]:
    return [img.get_attribute("src") for img in page.locator("#cmp-view img").all()]


def test_compare_step_counts_then_scrub_them_together(browser, url):  # noqa: F811
    page = new_page(browser, url)
    open_tab(page, "Compare")
    page.locator("#cmp-vary").get_by_label("Steps").check()
    values = page.locator("#cmp-values textarea, #cmp-values input").first
    page.wait_for_function("() => document.querySelector('#cmp-values textarea').value === '200, 50, 20, 5'")
    values.fill("40, 5")
    n = page.locator("#cmp-n input[type=number]")
    n.fill("2")
    n.press("Enter")
    page.locator("#cmp-run").click()
    status = wait_done(page, "cmp-status")
    assert status.startswith("Done: mnist · 2 step counts · 2 images each"), status
    assert texts(page, "#cmp-view .label") == ["40 steps", "5 steps"]
    slider = page.locator("#cmp-view input[type=range]")
    assert slider.input_value() == "1000" and all(t.startswith("result") for t in texts(page, "#cmp-view .t"))
    results = srcs(page)
    assert results[0] != results[1]

    slider.fill("0")  # pure noise: one starting x_T, so the same picture (and the same first x0) in both
    assert texts(page, "#cmp-view .t") == ["t=999 · 0/40 steps", "t=999 · 0/5 steps"]
    assert len(set(srcs(page))) == 1
    page.locator("#cmp-view").get_by_label("noisy x").check()
    first = srcs(page)
    assert len(set(first)) == 1 and first[0].startswith("data:image/webp") and first[0] not in results
    slider.fill("500")  # half way: the 5-step run is at t = 599 (trailing spacing: 999, 799, 599, ...)
    assert texts(page, "#cmp-view .t")[1] == "t=599 · 2/5 steps"
    assert texts(page, "#cmp-view .pos") == ["50% along · t ≈ 499"]
    timing = page.evaluate("""async () => {
        const s = document.querySelector('#cmp-view input[type=range]');
        const imgs = [...document.querySelectorAll('#cmp-view img')];
        const ms = [];
        for (const i of [100, 700, 300, 950, 0, 600, 850, 200, 1000, 450]) {
            const before = imgs.map(im => im.src), t0 = performance.now();
            s.value = i; s.dispatchEvent(new Event('input', {bubbles: true}));
            await Promise.all(imgs.map(im => im.decode()));
            await new Promise(r => requestAnimationFrame(r));
            if (imgs.some((im, k) => im.src !== before[k])) ms.push(performance.now() - t0);
        }
        ms.sort((a, b) => a - b);
        return {moves: ms.length, median_ms: ms[ms.length >> 1], max_ms: ms[ms.length - 1]};
    }""")
    (ARTIFACTS / "compare_timing.json").write_text(json.dumps(timing))
    assert timing["moves"] >= 9 and timing["max_ms"] < 250, timing  # a sanity bound; the budget is 50
    page.locator("#cmp-view button.play").click()
    page.wait_for_function("() => +document.querySelector('#cmp-view input[type=range]').value >= 1000",
                           timeout=10_000)
    assert texts(page, "#cmp-view .t")[0].startswith("result")
    page.screenshot(path=str(ARTIFACTS / "8-compare.png"), full_page=True)
    page.close()


def test_the_slider_stays_where_the_user_put_it_while_a_long_column_streams(browser, url):  # noqa: F811
    page = new_page(browser, url)
    open_tab(page, "Compare")
    page.locator("#cmp-vary").get_by_label("Steps").check()
    page.wait_for_function("() => document.querySelector('#cmp-values textarea').value === '200, 50, 20, 5'")
    page.locator("#cmp-values textarea").fill("400, 4")
    n = page.locator("#cmp-n input[type=number]")
    n.fill("1")
    n.press("Enter")
    page.locator("#cmp-run").click()
    wait_done(page, "cmp-status", prefix="step ")  # the 4-step column is done, the 400-step one runs
    slider = page.locator("#cmp-view input[type=range]")
    slider.fill("250")
    assert texts(page, "#cmp-view .t")[1] == "t=749 · 1/4 steps"
    wait_done(page, "cmp-status")
    assert slider.input_value() == "250"
    assert texts(page, "#cmp-view .t") == ["t=749 · 100/400 steps", "t=749 · 1/4 steps"]
    page.close()


def test_bad_values_show_an_error_toast(browser, url):  # noqa: F811
    page = new_page(browser, url)
    open_tab(page, "Compare")
    page.locator("#cmp-values textarea").fill("ddim, euler")
    page.locator("#cmp-run").click()
    page.wait_for_selector(".toast-body", timeout=30_000)
    assert "unknown sampler 'euler'" in page.locator(".toast-body").first.inner_text()
    page.close()
