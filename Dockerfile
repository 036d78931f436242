# The mlcycle image: the operator (`mlcycle run`) and every command its pods run (`mlcycle train`, `fetch-model`,
# `agent`, `drift`, ...), one image. `make image` builds it with docker or buildah:
#   make image                   # VARIANT=cpu: CPU-only torch wheels from TORCH_INDEX_URL (PyTorch's CPU wheel index)
#   make image VARIANT=cuda      # torch with its CUDA libraries (the default wheels); the GPU driver comes from the node
# The user is non-root 65532, the chart's runAsUser; the root filesystem may be read-only (the chart mounts /tmp).
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

ARG VARIANT=cpu
ARG TORCH_INDEX_URL=""
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN set -eu; \
    case "$VARIANT" in \
      cpu) test -n "$TORCH_INDEX_URL" || { echo "VARIANT=cpu needs TORCH_INDEX_URL (PyTorch's CPU wheel index)"; exit 1; }; \
           pip install torch --index-url "$TORCH_INDEX_URL" ;; \
      cuda) ;; \
      *) echo "VARIANT must be cpu or cuda, not $VARIANT"; exit 1 ;; \
    esac; \
    pip install . && rm -rf /src

RUN groupadd --gid 65532 mlcycle && \
    useradd --uid 65532 --gid 65532 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin mlcycle
USER 65532:65532
WORKDIR /tmp
ENV HOME=/tmp
ENTRYPOINT ["mlcycle"]
CMD ["--help"]
