//! The `pyairtable` binary: a thin shell over [`pyairtable_api::cli`].

#[tokio::main]
async fn main() -> std::process::ExitCode {
    pyairtable_api::cli::main().await
}
