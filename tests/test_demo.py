"""`sousa-hf demo`: the app as a person uses it, in a real browser (Debian's chromium and chromium-driver via
selenium; skipped with a reason where they are absent), and the Space folder it writes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile

from sousa_hf import load_sousa
from sousa_hf.predict import SousaPredictor
from sousa_hf.recipe import load_recipe
from sousa_hf.train import run

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("SOUSA_TEST_ARTIFACTS", ROOT / "runs" / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def classifier_dir(synthetic_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "skill-binary"
    recipe, training = load_recipe(ROOT / "recipes" / "quickstart.yaml", [
        "backbone=cnn:tiny", f"data={synthetic_dir}", f"output_dir={out}", "max_steps=2", "eval_strategy='no'",
        "per_device_train_batch_size=4", "length.max_seconds=2", "num_proc=null", "dataloader_num_workers=0"])
    run(recipe, training)
    return out


def test_the_app_answers_as_the_predictor_does_and_explains_bad_takes(classifier_dir, tmp_path):
    pytest.importorskip("gradio", reason="the demo extra is not installed: pip install 'sousa-hf[demo]'")
    from sousa_hf.data.errors import SousaDataError
    from sousa_hf.demo import DemoModel, build_demo

    predictor = SousaPredictor.from_pretrained(str(classifier_dir), device="cpu")
    take = tmp_path / "take.wav"
    soundfile.write(take, 0.3 * np.sin(np.linspace(0, 3000, 44100 * 2)).astype(np.float32), 44100)
    text, label, waveform, timeline = DemoModel(predictor)(str(take))
    expected = predictor.predict_files([take], progress=False)[0]
    assert f"**{expected['label']}**" in text and label == pytest.approx(expected["scores"])
    assert Path(waveform).is_file() and timeline is None
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(44100 * 2, dtype=np.float32), 44100)
    with pytest.raises(SousaDataError, match="silent"):
        DemoModel(predictor)(str(silent))
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio at all")
    with pytest.raises(SousaDataError, match="could not read broken.wav"):
        DemoModel(predictor)(str(broken))
    assert build_demo(str(classifier_dir)) is not None


def test_the_space_folder_holds_the_model_and_its_app(classifier_dir, tmp_path):
    from sousa_hf.cli import main

    assert main(["demo", str(classifier_dir), "--space", str(tmp_path / "space")]) == 0
    space = tmp_path / "space"
    assert (space / "model.safetensors").is_file() and (space / "config.json").is_file()
    assert "build_demo(\".\")" in (space / "app.py").read_text()
    assert (space / "requirements.txt").read_text().strip() == "sousa-hf[demo]"
    assert "sdk: gradio" in (space / "README.md").read_text()
    assert not (space / "metrics").exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver "
                    "(apt-get install -y chromium chromium-driver)")
def test_a_person_uploads_a_real_take_in_a_browser_and_reads_the_label(classifier_dir, sample_dir, tmp_path):
    pytest.importorskip("gradio", reason="the demo extra is not installed: pip install 'sousa-hf[demo]'")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    row = load_sousa(sample_dir, split="test")[0]
    take = tmp_path / f"{row['sample_id']}.flac"
    soundfile.write(take, row["audio"]["array"], row["audio"]["sampling_rate"])
    predictor = SousaPredictor.from_pretrained(str(classifier_dir), device="cpu")
    expected = predictor.predict_files([take], progress=False)[0]

    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen([sys.executable, "-m", "sousa_hf.cli", "demo", str(classifier_dir), "--port", str(port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(flag)
    driver = None
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    pytest.fail(f"the app did not start:\n{server.stdout.read() if server.poll() is not None else ''}")
                time.sleep(0.5)
        driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
        wait = WebDriverWait(driver, 120)
        driver.get(url)
        upload = wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "input[type=file]")))
        upload.send_keys(str(take))
        wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "audio, .waveform-container")))
        time.sleep(1.0)  # the upload finishes before the button's event reads the file
        driver.find_element(By.CSS_SELECTOR, "#judge").click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#summary").text.strip())
        summary = driver.find_element(By.CSS_SELECTOR, "#summary").text
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "demo_real_take.png"))
        assert expected["label"] in summary, summary
        assert f"{expected['scores'][expected['label']]:.0%}" in summary, summary
        label_box = driver.find_element(By.CSS_SELECTOR, "#label").text
        assert expected["label"] in label_box

        silent = tmp_path / "silent.wav"  # a bad take: a message on the page, not a stack trace
        soundfile.write(silent, np.zeros(44100 * 3, dtype=np.float32), 44100)
        driver.get(url)
        upload = wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "input[type=file]")))
        upload.send_keys(str(silent))
        wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "audio, .waveform-container")))
        time.sleep(1.0)
        driver.find_element(By.CSS_SELECTOR, "#judge").click()
        wait.until(lambda d: "silent" in d.find_element(By.TAG_NAME, "body").text)
        page = driver.find_element(By.TAG_NAME, "body").text
        driver.save_screenshot(str(ARTIFACTS / "demo_silent_take.png"))
        assert "no strokes to judge" in page and "Traceback" not in page
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=30)
