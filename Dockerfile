# The fraudstream detector image: `docker compose up` builds it (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so a code change does not reinstall them. Every dependency has a
# manylinux wheel for CPython 3.11, so no compiler is needed. constraints.txt pins them when
# present (the glob keeps the build working without it).
COPY pyproject.toml README.md constraints*.txt ./
COPY fraudstream ./fraudstream
RUN if [ -f constraints.txt ]; then pip install -c constraints.txt . ; else pip install . ; fi

RUN useradd --create-home --uid 10001 fraudstream
USER fraudstream

ENTRYPOINT ["fraudstream"]
CMD ["detect"]
