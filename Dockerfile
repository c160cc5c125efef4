# counter-service for real clusters (in the embedded lab the image name maps to
# the binary built by cargo). Multi-stage: build with cargo, run on a slim base.
FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p counter-service

FROM debian:bookworm-slim
COPY --from=build /src/target/release/counter-service /usr/local/bin/counter-service
EXPOSE 8080
USER 65534
ENTRYPOINT ["/usr/local/bin/counter-service"]
