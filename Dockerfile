# tether's container image: a static binary on distroless/static, run as
# the image's non-root user (65532), no shell.
#   docker build -t tether:$(git describe --tags --always --dirty) \
#     --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg COMMIT=$(git rev-parse HEAD) .
# Kubernetes manifests: deploy/kubernetes/. See docs/operations.md.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/tether ./cmd/tether
# The data dir, owned by the runtime user (disk mode: TETHER_DATA_DIR).
RUN mkdir -p /out/var/lib/tether

FROM gcr.io/distroless/static-debian12:nonroot AS run
COPY --from=build /out/tether /usr/bin/tether
COPY --from=build --chown=65532:65532 /out/var/lib/tether /var/lib/tether
USER 65532:65532
# proxy, admin (UI, API, /metrics, /readyz), gossip (TCP and UDP)
EXPOSE 8080 9090 7946/tcp 7946/udp
ENTRYPOINT ["/usr/bin/tether"]
CMD ["serve"]
