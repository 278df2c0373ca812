# The meterline worker image used by docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY meterline ./meterline
COPY producers ./producers
COPY stream ./stream
COPY sinks ./sinks
COPY alerts ./alerts
RUN pip install --no-cache-dir .
EXPOSE 6066
CMD ["meterline", "worker"]
