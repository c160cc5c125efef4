//! counter-service: the seed-003 web service (see `runbook::counter`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runbook::counter::serve(runbook::counter::Settings::from_env()).await
}
