# One image, two entry points: `queueworker operator` and `queueworker worker`.
# Build:  docker build -t queueworker:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY worker ./worker
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[gpu]"

FROM python:3.11-slim
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin queueworker
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
ENV PYTHONUNBUFFERED=1
ENTRYPOINT ["queueworker"]
CMD ["--help"]
