//! Prints the MD5 digest of a URL's body, like keepalived's `genhash`, to
//! paste into an HTTP check's `digest`.
//!
//! ```text
//! cargo run -p healthcheck --example genhash -- [options] URL
//!   --connect IP:PORT   connect here instead of resolving the URL's host
//!   --vhost HOST        Host header (default: the URL's host[:port])
//!   --sni NAME          TLS server name (default: the virtual host)
//!   --verify            check the certificate against the system roots
//!   --ca FILE           check the certificate against this PEM CA file
//!   --bind IP           source address
//!   --timeout SECS      whole fetch limit (default 10)
//!   --max-body BYTES    largest body accepted (default 16 MiB)
//! ```

use std::time::Duration;

use anyhow::{Context, bail};
use healthcheck::{GenhashRequest, TlsVerify, genhash};

fn parse_args() -> anyhow::Result<GenhashRequest> {
    let mut args = std::env::args().skip(1);
    let mut url = None;
    let mut request = GenhashRequest::new("");
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--connect" => {
                request.connect_to = Some(value("--connect")?.parse().context("--connect IP:PORT")?)
            }
            "--vhost" => request.virtual_host = Some(value("--vhost")?),
            "--sni" => request.sni = Some(value("--sni")?),
            "--verify" => request.tls_verify = TlsVerify::SystemRoots,
            "--ca" => request.tls_verify = TlsVerify::CaFile(value("--ca")?.into()),
            "--bind" => request.bind = Some(value("--bind")?.parse().context("--bind IP")?),
            "--timeout" => {
                request.timeout =
                    Duration::from_secs_f64(value("--timeout")?.parse().context("--timeout SECS")?);
            }
            "--max-body" => {
                request.max_body = value("--max-body")?.parse().context("--max-body BYTES")?
            }
            "-h" | "--help" => {
                println!(
                    "usage: genhash [--connect IP:PORT] [--vhost HOST] [--sni NAME] [--verify | --ca FILE] [--bind IP] [--timeout SECS] [--max-body BYTES] URL"
                );
                std::process::exit(0);
            }
            other if other.starts_with('-') => bail!("unknown option {other}"),
            other => {
                if url.replace(other.to_owned()).is_some() {
                    bail!("only one URL");
                }
            }
        }
    }
    request.url = url.context("missing URL (try --help)")?;
    Ok(request)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("genhash: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let request = parse_args()?;
    let report = genhash(&request).await?;
    println!("URL          = {}", request.url);
    println!("Connected to = {}", report.target);
    println!("HTTP status  = {}", report.status);
    println!("Body length  = {}", report.body_len);
    println!("MD5SUM = {}", report.digest);
    Ok(())
}
