# Build stage: compile the server in release mode.
FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin eddy

# Runtime stage: the binary alone on a slim Debian. Settings are EDDY_* variables (see
# config.toml); these make it serve on every interface and keep its data in the volume.
FROM debian:bookworm-slim
COPY --from=builder /src/target/release/eddy /usr/local/bin/eddy
ENV EDDY_LISTEN=0.0.0.0:5544 \
    EDDY_HTTP_LISTEN=0.0.0.0:5545 \
    EDDY_DATA_DIR=/data
VOLUME /data
EXPOSE 5544 5545
# docker stop sends SIGTERM: Eddy commits the epoch in flight, flushes and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["eddy"]
