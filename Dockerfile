# p2pshare in a container: one image for every mode (index, peer, one-shot commands).
#
#   docker build -t p2pshare .
#   docker run -p 1024:1024 p2pshare                      # index server (the default)
#   docker run -p 1025:1025 p2pshare peer --dir peers/peer1 --no-console --index HOST:1024
#
# A peer needs --no-console in a container: without a terminal on standard input its
# console reads end-of-file at once and the peer leaves.

# Stage 1: build the release binary with the versions pinned in Cargo.lock.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

# Stage 2: a small runtime image with the binary and the sample folders.
FROM debian:bookworm-slim
# The index writes its database (p2pshare-index.db) in the working directory, and peers
# their state dirs inside their folders: both must belong to the user that runs them.
RUN useradd --system --create-home --home-dir /opt/p2pshare --shell /usr/sbin/nologin p2pshare
COPY --from=build /src/target/release/p2pshare /usr/local/bin/p2pshare
COPY --chown=p2pshare:p2pshare peers/ /opt/p2pshare/peers/
COPY --chown=p2pshare:p2pshare config/ /opt/p2pshare/config/
# Relative paths (config/index.txt, peers/...) resolve from here.
WORKDIR /opt/p2pshare
USER p2pshare

# 1024: index server; 1025: peer; 1500: seed.
EXPOSE 1024 1025 1500

# Checks the index on its default port. The port must match the mode the container
# runs: for a peer, override it, e.g.
#   docker run --health-cmd 'p2pshare status 127.0.0.1:1025' ... p2pshare peer ...
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["p2pshare", "status", "127.0.0.1:1024"]

ENTRYPOINT ["p2pshare"]
CMD ["index"]
