//! counter-service: the seed-003 web service (see the library, `counter_service`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    counter_service::serve(counter_service::Settings::from_env()).await
}
