# One server node. compose.yaml runs two of them against a shared Redis.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 \
    PORT=8080

# A Chinese font for the periodic review's PDF (server/accountability/pdf.py) and the charts.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-noto-cjk fontconfig \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY . /app
# Run unprivileged; var/ is the one place a node may write (logs, local exports).
RUN pip install . \
    && useradd --system --home-dir /app --no-create-home app \
    && mkdir -p /app/var && chown app /app/var
USER app

EXPOSE 8080
# `python -m` from /app runs the copied packages, so web/ and config/ resolve beside them.
CMD ["python", "-m", "server", "run"]
