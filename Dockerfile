# One image for every cvfleet service; the command picks the queue (see docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 CVFLEET_CACHE=/opt/cvfleet/cache
WORKDIR /opt/cvfleet/src
COPY pyproject.toml README.md ./
COPY nn nn
COPY vision vision
COPY tasks tasks
COPY workers workers
RUN pip install . \
 && cvfleet assets fetch yolov3-tiny mnist5k \
 && python -c "from vision.darknet_onnx import cached_onnx; from workers.asset_cache import yolov3_tiny_files as f; \
m = f(); print('converted', cached_onnx(m['cfg'], m['weights'], 416))" \
 && useradd --create-home --uid 1000 cvfleet \
 && mkdir -p /data && chown cvfleet /data
USER cvfleet
CMD ["cvfleet", "worker"]
