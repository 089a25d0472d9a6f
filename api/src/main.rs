//! The `pyairtable` binary: a thin shell over [`pyairtable_api::cli`].

/// mimalloc rather than the system allocator: request handling and appends allocate many small,
/// short-lived buffers, which it serves with markedly less CPU (ADR 0012).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    pyairtable_api::cli::main().await
}
