# syntax=docker/dockerfile:1
# One multi-stage build, one target per service:
#   docker build --target ingest -t kafkachat/ingest .
#   docker build --target subscribe -t kafkachat/subscribe .
# The images hold a static binary and the healthcheck probe on distroless
# (no shell, no package manager) and run as the non-root user 65532.

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/ \
      ./services/ingest ./services/subscribe ./services/healthcheck

FROM gcr.io/distroless/static-debian12:nonroot AS base
COPY --from=build /out/healthcheck /usr/local/bin/healthcheck
USER 65532:65532
ENV CHAT_LOG_FORMAT=json

FROM base AS ingest
COPY --from=build /out/ingest /usr/local/bin/ingest
ENV CHAT_LISTEN_ADDR=:8081
EXPOSE 8081
HEALTHCHECK --interval=5s --timeout=4s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/healthcheck", "-addr", "127.0.0.1:8081"]
ENTRYPOINT ["/usr/local/bin/ingest"]

FROM base AS subscribe
COPY --from=build /out/subscribe /usr/local/bin/subscribe
ENV CHAT_LISTEN_ADDR=:8082
EXPOSE 8082
HEALTHCHECK --interval=5s --timeout=4s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/healthcheck", "-addr", "127.0.0.1:8082"]
ENTRYPOINT ["/usr/local/bin/subscribe"]
