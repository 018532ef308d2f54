# Build stage: compile the server in release mode.
FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin eddy

# Runtime stage: just the binary on a slim Debian.
FROM debian:bookworm-slim
COPY --from=builder /src/target/release/eddy /usr/local/bin/eddy
VOLUME /data
EXPOSE 5544
ENTRYPOINT ["eddy", "--listen", "0.0.0.0:5544", "--data-dir", "/data"]
