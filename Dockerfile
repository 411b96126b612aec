# syntax=docker/dockerfile:1
#
# percore release image (multi-stage).
#
#   docker build -t percore .
#   docker run --rm -p 8080:8080 percore
#
# io_uring inside containers: Docker's default seccomp profile refuses the
# io_uring syscalls (io_uring_setup/enter/register), so under a plain
# `docker run` percore's `--io-driver auto` falls back to epoll and logs that it
# did. To run on io_uring, allow those syscalls, e.g. with a seccomp profile
# that permits them (or `--security-opt seccomp=unconfined` where that is
# acceptable); `--io-driver io_uring` makes percore fail instead of falling back.

# ---- build ---------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
# The whole workspace (see .dockerignore): Cargo.toml/Cargo.lock, src/, shards/,
# benches/ and tests/ (cargo reads the manifest's declared targets), site/.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin percore \
 && install -m 0755 target/release/percore /usr/local/bin/percore

# ---- runtime -------------------------------------------------------------
FROM debian:bookworm-slim
RUN useradd --system --home-dir /srv/percore --shell /usr/sbin/nologin percore
COPY --from=build /usr/local/bin/percore /usr/local/bin/percore
# The bundled site: percore's default --root is site/public, relative to the
# working directory.
WORKDIR /srv/percore
COPY --from=build /src/site ./site
USER percore
EXPOSE 8080
STOPSIGNAL SIGTERM
CMD ["percore", "serve", "--listen", "0.0.0.0:8080"]
