# p2pshare in a container: one image for every role (index, seed, peer) and the one-shot
# commands.
#
#   docker build -t p2pshare .                              # with a registry
#   scripts/docker-build.sh                                 # without one (see below)
#   docker run -p 1024:1024 p2pshare                        # an index server (the default)
#   docker run -p 1025:1025 p2pshare peer --index HOST:1024 # a peer sharing /var/lib/p2pshare/share
#
# compose.yaml runs a whole network (an index, three seeds, any number of peers).
#
# The base images are build arguments. By default they come from a registry
# (rust:1-slim-bookworm and debian:bookworm-slim); scripts/docker-base.sh makes local
# equivalents from Debian's packages and this machine's Rust toolchain, and
# scripts/docker-build.sh builds with them:
#
#   docker build --build-arg BUILDER_IMAGE=... --build-arg RUNTIME_IMAGE=... -t p2pshare .
#
# The crates come from crates.io, or from docker/vendor/ when scripts/docker-build.sh
# has vendored them there (a build that cannot reach crates.io).
ARG BUILDER_IMAGE=rust:1-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# Stage 1: the release binary, with the versions pinned in Cargo.lock.
FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
# No debug line tables (profile.release has debug = 1, for profiling on a host): the
# image would strip them anyway, and the build is shorter without them. A backtrace
# still names functions.
ENV CARGO_PROFILE_RELEASE_DEBUG=0
# Vendored crates, when there are: their config.toml points cargo at them.
COPY docker/vendor/ docker/vendor/
RUN if [ -f docker/vendor/config.toml ]; then \
        mkdir -p .cargo && cp docker/vendor/config.toml .cargo/config.toml; \
    fi
# The dependencies alone first, in a layer of their own (built against empty sources),
# so that a change to the code rebuilds only the crate itself.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && : > src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src target/release/p2pshare* target/release/deps/p2pshare-* \
        target/release/deps/libp2pshare-* target/release/.fingerprint/p2pshare-*
COPY src/ src/
RUN cargo build --release --locked \
    && strip --strip-debug -o /p2pshare target/release/p2pshare

# Stage 2: the runtime. Debian's slim image: glibc (the binary links it), a shell for
# the entrypoint and the health check, coreutils for `docker exec`.
FROM ${RUNTIME_IMAGE}
# The state of every role lives in /var/lib/p2pshare (the index's database, a seed's
# key, a peer's shared folder and its state dir), event logs in /var/log/p2pshare, the
# HTTP token (compose makes one) in /run/p2pshare: all belong to the user that runs
# p2pshare, so a volume mounted there starts with that owner.
RUN groupadd --system --gid 10001 p2pshare \
    && useradd --system --uid 10001 --gid p2pshare --home-dir /var/lib/p2pshare --no-create-home \
        --shell /usr/sbin/nologin p2pshare \
    && mkdir -p /var/lib/p2pshare/share /var/log/p2pshare /run/p2pshare \
    && chown -R p2pshare:p2pshare /var/lib/p2pshare /var/log/p2pshare /run/p2pshare
COPY --from=build /p2pshare /usr/local/bin/p2pshare
COPY docker/entrypoint.sh /usr/local/bin/p2pshare-entrypoint
COPY docker/p2pshare.toml /etc/p2pshare/config.toml
ENV P2PSHARE_CONFIG=/etc/p2pshare/config.toml
WORKDIR /var/lib/p2pshare
USER p2pshare

# 1024: index; 1500: seed; 1025: peer; 8080: HTTP (every role).
EXPOSE 1024 1025 1500 8080

# One check for every role: `p2pshare status` on 127.0.0.1 at the port of the role
# the container runs (the entrypoint reads it from the command line or
# P2PSHARE_LISTEN); it exits non-zero unless the node answers healthy.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["p2pshare-entrypoint", "--health"]

ENTRYPOINT ["p2pshare-entrypoint"]
CMD ["index"]
