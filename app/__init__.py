"""`udasa-app`: the Gradio app over a workspace store (inspector, human rating, comparison).

Importing this package turns Gradio's analytics and Hugging Face telemetry off before anything
imports gradio, so the app makes no outside request. The logic lives in plain modules that a
test can call without a browser (`inspector`, `rating`, `compare`, `export`, `auth`); `ui`
binds them to Gradio components and `cli` starts the server.
"""

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
