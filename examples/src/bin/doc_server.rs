//! Serves one configuration file over HTTP with an ETag and `Last-Modified`, answering
//! conditional requests with `304 Not Modified`: a remote document for
//! `live_server --remote`.
//!
//! Run it with `cargo run -p eac-examples --bin doc_server -- --file remote.toml`, then
//! `curl -i localhost:8090/remote.toml`. The file is read on every request, so an edit
//! is the next poll's new document; any path serves it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use eac_examples::doc_server::{DocServer, Document};

/// Serves one configuration file with ETags.
#[derive(Debug, Parser)]
#[command(name = "doc_server")]
struct Options {
    /// The file to serve (TOML, YAML or JSON, told by its extension).
    #[arg(long, value_name = "FILE")]
    file: PathBuf,
    /// Where to listen.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    let server = match DocServer::start(options.listen).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("doc_server: cannot listen on {}: {e}", options.listen);
            return ExitCode::FAILURE;
        }
    };
    server.set(Document::File(options.file.clone()));
    let name = options
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    println!(
        "doc_server serving {} at {}",
        options.file.display(),
        server.url(&format!("/{name}"))
    );
    let _ = tokio::signal::ctrl_c().await;
    server.stop().await;
    ExitCode::SUCCESS
}
