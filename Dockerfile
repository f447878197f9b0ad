# Build stage: compile Portal into one self-contained binary (migrations, pages and the
# browser bundle are embedded in the module graph).
FROM denoland/deno:2.9.6 AS build
WORKDIR /src
COPY deno.json deno.lock ./
# Dependencies in their own layer, reused until deno.json or deno.lock change: without
# arguments, `deno install` reads only those two files (every dependency is an `imports` entry).
RUN deno install --frozen
COPY . .
RUN deno task compile

# Runtime stage: only the binary, as a non-root user.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/portal --create-home portal
COPY --from=build /src/dist/portal /usr/local/bin/portal
USER portal
WORKDIR /var/lib/portal
ENV PORTAL_HOST=0.0.0.0 PORTAL_PORT=8000 PORTAL_DATA_DIR=/var/lib/portal/data
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${PORTAL_PORT}/healthz" || exit 1
ENTRYPOINT ["/usr/local/bin/portal"]
CMD ["serve"]
