# portcullis container image.
#
#   docker build -t portcullis:0.1.0 .
#   docker run --rm -p 5000:5000 portcullis:0.1.0
#
# Without arguments the image runs `portcullis serve` on the embedded default configuration:
# registry API on 0.0.0.0:5000, admin endpoints on 127.0.0.1:9095 (reachable only inside the
# container). To expose /metrics, /healthz and /readyz, set PORTCULLIS__ADMIN_LISTEN=0.0.0.0:9095
# or mount a configuration file and run `serve --config /etc/portcullis/config.yaml`.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# config/default.yaml is compiled into the binary (include_str!).
COPY config ./config
# Cargo.toml declares the `cargo bench` target, so cargo needs its source to read the manifest
# (the benchmark harness, benchmark-harness/, is not needed).
COPY benches ./benches
RUN cargo build --release --locked \
 && install -D -m 0755 target/release/portcullis /out/portcullis \
 && mkdir -p /out/state

# The binary links glibc dynamically (libc, libm, libgcc_s); aws-lc is built into it. The
# distroless cc image provides those libraries and CA certificates, and has no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/portcullis /usr/local/bin/portcullis
# state_dir (the pull ledger's SQLite file) defaults to $STATE_DIRECTORY: a directory the
# nonroot user owns. Mount a volume there to keep the ledger across container restarts.
COPY --from=build --chown=nonroot:nonroot /out/state /var/lib/portcullis
ENV STATE_DIRECTORY=/var/lib/portcullis
VOLUME /var/lib/portcullis
EXPOSE 5000 9095
USER nonroot
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["serve"]
