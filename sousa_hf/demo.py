"""A demo app a drummer can use: upload or record a take, see what a saved SOUSA model makes of it.

    sousa-hf demo runs/quickstart                 # any training run's folder or a Hub id; pip install 'sousa-hf[demo]'

Shows the label with every label's probability (classifiers) or each score on 0-100 (score models), the
take's waveform and, for a model with a stroke head, the per-stroke timeline (`sousa_hf.stroke_timeline`).
A take that cannot be read or judged gets a message, not a stack trace. The same app runs as a Hugging
Face Space from a model folder: `write_space(model_dir, space_dir)` writes its `app.py` and
`requirements.txt` beside a copy of the model.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from .data.errors import SousaDataError
from .predict import SousaPredictor, input_warning, read_audio_file

SPACE_APP = '''# A Hugging Face Space serving the SOUSA model in this folder (written by sousa_hf.demo.write_space).
from sousa_hf.demo import build_demo

build_demo(".").launch()
'''


SPACE_CARD = """---
title: SOUSA {task}
emoji: 🥁
colorFrom: red
colorTo: gray
sdk: gradio
app_file: app.py
pinned: false
---

Upload or record a snare-drum rudiment take and see what this SOUSA model ({task}) makes of it.
The model's own card is MODEL_CARD.md.
"""


def _waveform_png(array: np.ndarray, rate: int, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mono = array if array.ndim == 1 else array.mean(axis=0)
    seconds = np.arange(mono.size) / rate
    figure, axes = plt.subplots(figsize=(10, 2.2))
    axes.plot(seconds, mono, color="0.35", linewidth=0.5)
    axes.set_xlabel("seconds")
    axes.set_yticks([])
    axes.set_xlim(0, max(seconds[-1] if mono.size else 0.0, 1e-3))
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def describe(result: dict) -> str:
    """One line a drummer reads: the label and its probability, or the scores, and the strokes found."""
    if result["label"] is not None:
        text = f"**{result['label']}** ({result['scores'][result['label']]:.0%})"
    elif result["scores"]:
        text = ", ".join(f"{name.replace('_', ' ')} **{value:.1f}**/100" for name, value in result["scores"].items())
    else:
        text = ""
    if "strokes" in result:
        strokes = result["strokes"]
        graces = sum(s["is_grace"] for s in strokes)
        text += ("; " if text else "") + f"{len(strokes)} strokes found ({graces} grace notes)"
        deviations = [abs(s["deviation_ms"]) for s in strokes if "deviation_ms" in s]
        if deviations:
            text += f", {np.mean(deviations):.1f} ms from the grid on average"
    if result.get("warning"):
        text += f"\n\n⚠️ {result['warning']}"
    return text


class DemoModel:
    """What the app calls: a take's file -> (markdown, label probabilities or None, waveform PNG, timeline PNG)."""

    def __init__(self, predictor: SousaPredictor):
        self.predictor = predictor
        self.scratch = Path(tempfile.mkdtemp(prefix="sousa-demo-"))

    def __call__(self, audio_path: str | None, tempo_bpm: float | None = None):
        if not audio_path:
            raise SousaDataError("upload or record a take first")
        try:
            array, rate = read_audio_file(Path(audio_path))
        except Exception as err:  # any unreadable upload is a message for the user
            raise SousaDataError(f"could not read {Path(audio_path).name}: {err}") from err
        if array.size == 0:
            raise SousaDataError(f"{Path(audio_path).name} holds no audio")
        warning = input_warning(np.asarray(array), int(rate))
        if warning and "silent" in warning:
            raise SousaDataError(warning.split(", so this prediction")[0])  # "the clip is silent (...): no strokes"
        tempo = float(tempo_bpm) if tempo_bpm else None
        if self.predictor.needs_tempo and tempo is None:
            raise SousaDataError("this model needs the metronome's tempo: enter it in BPM")
        result = self.predictor.predict([(array, rate)], tempo_bpm=tempo)[0]
        stem = f"{Path(audio_path).stem}-{len(list(self.scratch.iterdir()))}"
        waveform = str(_waveform_png(np.asarray(array), int(rate), self.scratch / f"{stem}-waveform.png"))
        timeline = None
        if "strokes" in result:
            from .stroke_timeline import plot_stroke_timeline

            timeline = str(plot_stroke_timeline(array, rate, result["strokes"], self.scratch / f"{stem}-timeline.png",
                                                tempo_bpm=tempo, title=Path(audio_path).name))
        label = dict(result["scores"]) if result["label"] is not None else None
        return describe(result), label, waveform, timeline


def build_demo(model: str, batch_size: int = 1, device: str | None = None):
    """The Gradio app for a saved SOUSA model (a run folder or a Hub id); `.launch()` serves it."""
    try:
        import gradio as gr
    except ImportError as err:
        raise SousaDataError("the demo needs Gradio: pip install 'sousa-hf[demo]'") from err

    predictor = SousaPredictor.from_pretrained(model, batch_size=batch_size, device=device)
    run = DemoModel(predictor)
    config = predictor.model.config
    what = ("its strokes" if config.task_kind == "strokes" else
            "its skill label" if predictor.is_classifier else "its scores on 0-100")

    def judge(audio_path, tempo_bpm):
        try:
            text, label, waveform, timeline = run(audio_path, tempo_bpm)
        except SousaDataError as err:
            raise gr.Error(str(err)) from None
        return (text, gr.update(value=label, visible=label is not None), waveform,
                gr.update(value=timeline, visible=timeline is not None))

    with gr.Blocks(title="SOUSA: snare rudiment assessment") as demo:
        gr.Markdown(f"# SOUSA snare-drum assessment\nUpload or record a snare rudiment take; the model "
                    f"(`{model}`, task `{config.task}`) gives {what}.")
        with gr.Row():
            audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="take")
            tempo = gr.Number(label="metronome tempo (BPM)" + ("" if predictor.needs_tempo else ", optional"),
                              value=None, visible=predictor.transcribes_strokes or predictor.needs_tempo)
        button = gr.Button("Judge this take", variant="primary", elem_id="judge")
        summary = gr.Markdown(elem_id="summary")
        label = gr.Label(label="label probabilities", visible=predictor.is_classifier, elem_id="label")
        waveform = gr.Image(label="waveform", type="filepath", elem_id="waveform")
        timeline = gr.Image(label="strokes", type="filepath", visible=False, elem_id="timeline")
        button.click(judge, inputs=[audio, tempo], outputs=[summary, label, waveform, timeline])
    return demo


def write_space(model_dir: str | Path, space_dir: str | Path) -> Path:
    """A Hugging Face Space folder serving the model: a copy of the model folder (weights, config, extractor)
    plus `app.py` and `requirements.txt`. Upload it with `hf upload USER/SPACE SPACE_DIR . --repo-type space`."""
    model_dir, space_dir = Path(model_dir), Path(space_dir)
    if not (model_dir / "config.json").is_file():
        raise SousaDataError(f"{model_dir} holds no saved model (config.json); give a training run's folder")
    space_dir.mkdir(parents=True, exist_ok=True)
    for path in model_dir.iterdir():
        if path.is_file():  # the model itself, not its checkpoints or metrics
            shutil.copy2(path, space_dir / path.name)
    if (space_dir / "README.md").is_file():  # the model card: kept, under another name
        (space_dir / "README.md").rename(space_dir / "MODEL_CARD.md")
    (space_dir / "README.md").write_text(SPACE_CARD.format(task=_read_task(space_dir)))
    (space_dir / "app.py").write_text(SPACE_APP)
    (space_dir / "requirements.txt").write_text("sousa-hf[demo]\n")
    return space_dir


def _read_task(folder: Path) -> str:
    import json

    return json.loads((folder / "config.json").read_text()).get("task", "SOUSA")
