"""A researcher loads an adapter into a running arena from the Adapters tab; after a page reload the Live
tab offers `<base>:<adapter>` and it answers. An annotator never sees the tab. (Real `arena serve`,
headless Chromium.)"""

from __future__ import annotations

import pytest

from arena.store import Store
from tests.browser import CHROMIUM_ARGS, chromium_path, login, serve, write_models_yaml

pytestmark = pytest.mark.slow


def random_llama_lora(base_dir, out_dir) -> None:
    """A LoRA with non-zero B matrices (no training needed to exercise loading)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(3)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(r=4, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(out_dir)


def test_researcher_loads_an_adapter_from_the_tab_and_live_offers_it(tiny_models, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    adapters = tmp_path / "adapters"
    random_llama_lora(tiny_models["llama-tiny"], adapters / "tone-v1")
    config = write_models_yaml(tmp_path / "models.yaml", tiny_models, max_tokens=8)
    db = str(tmp_path / "ratings.db")
    with Store.open(db) as store:
        store.add_annotator("lead", "pw-lead", role="researcher")
        store.add_annotator("rater", "pw-rater")
    with serve(config, db, tmp_path / "serve.log") as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        en = url + "en/"

        rater = browser.new_page()
        login(rater, en, "rater", "pw-rater")
        expect(rater.get_by_role("tab", name="Live side-by-side")).to_be_visible(timeout=60_000)
        expect(rater.get_by_role("tab", name="Adapters")).to_have_count(0)

        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        login(page, en, "lead", "pw-lead")
        page.get_by_role("tab", name="Adapters").click(timeout=60_000)
        directory = page.locator("#adapters-dir input, #adapters-dir textarea").first
        directory.fill(str(adapters))
        directory.press("Enter")
        expect(page.locator("#adapters-table")).to_contain_text("tone-v1", timeout=30_000)
        page.locator("#adapters-pick input").click()
        page.get_by_role("option", name="tone-v1").click()
        # The base is picked from adapter_config.json's base model path.
        expect(page.locator("#adapters-base input")).to_have_value("llama-tiny", timeout=30_000)
        page.locator("#adapters-load").click()
        expect(page.locator("#adapters-status")).to_contain_text("Loaded llama-tiny:tone-v1", timeout=60_000)
        expect(page.locator("#adapters-table")).to_contain_text("llama-tiny:tone-v1")

        # A fresh page load lists the new model in the pickers; it answers in the Live tab.
        page.reload()
        page.get_by_role("tab", name="Live side-by-side").click(timeout=60_000)
        choice = page.locator("#live-models label", has_text="llama-tiny:tone-v1")
        expect(choice).to_be_visible(timeout=30_000)
        # Live compares two models at least: the adapter beside its base.
        for label in page.locator("#live-models label").all():
            if label.locator("input").is_checked() != (
                label.inner_text().strip() in ("llama-tiny", "llama-tiny:tone-v1")
            ):
                label.click()
        page.locator("#live-message textarea").fill("안녕하세요")
        page.locator("#live-send").click()
        expect(page.locator("#live-header-0")).to_contain_text("llama-tiny", timeout=60_000)
        expect(page.locator("#live-header-1")).to_contain_text("llama-tiny", timeout=60_000)
        headers = {page.locator(f"#live-header-{i}").inner_text().strip() for i in (0, 1)}
        assert any("llama-tiny:tone-v1" in h for h in headers), headers
        for i in (0, 1):
            expect(page.locator(f"#live-timing-{i}")).to_contain_text("TTFT", timeout=120_000)  # shown once stored
        browser.close()
    with Store.open(db) as store:
        gens = store.generations_frame()
    live = gens[gens["context"] == "live:lead"]
    assert set(live["model"]) == {"llama-tiny", "llama-tiny:tone-v1"} and len(live) == 2
