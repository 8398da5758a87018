# The metric Space's app: evaluate's own widget over this module (pip install -r requirements.txt; python app.py).
import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("sousa_metric.py", "skill4")
launch_gradio_widget(module)
